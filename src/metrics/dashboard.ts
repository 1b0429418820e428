/**
 * The live dashboard the admin endpoint serves at `/dashboard`: one self-contained page (no
 * build step, no CDN — an operator's browser may have no internet) that polls `/providers`
 * and `/totals` and draws the workers with load bars, breaker states and the consumer's
 * time to first token and throughput over the last minutes. Every value from the JSON is put
 * in the page with textContent, never as HTML. `?interval=ms` sets the poll interval (1 s).
 */
export const DASHBOARD_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>shuttle-rpc dashboard</title>
<style>
  body { font: 14px system-ui, sans-serif; margin: 1.5rem; color: #1d2430; background: #f7f8fa; }
  h1 { font-size: 1.2rem; margin: 0 0 1rem; }
  table { border-collapse: collapse; width: 100%; background: white; }
  th, td { text-align: left; padding: .4rem .6rem; border-bottom: 1px solid #e3e6eb; vertical-align: middle; }
  th { font-weight: 600; color: #5b6575; }
  .bar { position: relative; width: 140px; height: 12px; background: #e8ebf0; border-radius: 6px; overflow: hidden; display: inline-block; vertical-align: middle; }
  .bar > span { position: absolute; left: 0; top: 0; bottom: 0; background: #3b82f6; }
  .bar.kv > span { background: #8b5cf6; }
  .num { margin-left: .4rem; font-variant-numeric: tabular-nums; }
  .breaker-closed { color: #15803d; } .breaker-half-open { color: #b45309; } .breaker-open, .ejected, .draining { color: #b91c1c; font-weight: 600; }
  .charts { display: flex; gap: 1.5rem; margin-top: 1.2rem; flex-wrap: wrap; }
  .chart { background: white; padding: .6rem .8rem; border: 1px solid #e3e6eb; }
  .chart svg { display: block; width: 420px; height: 90px; }
  .chart polyline { fill: none; stroke: #3b82f6; stroke-width: 2; }
  #status { color: #5b6575; margin-top: .8rem; }
  #error { color: #b91c1c; }
</style>
</head>
<body>
<h1>shuttle-rpc: providers seen by this client</h1>
<table>
  <thead><tr><th>worker</th><th>service</th><th>address</th><th>GPU</th><th>running / slots</th><th>waiting</th><th>KV cache</th><th>tokens/s</th><th>in flight</th><th>breaker</th><th>state</th></tr></thead>
  <tbody id="workers"></tbody>
</table>
<div class="charts">
  <div class="chart"><div>time to first token (ms): <span id="ttft" class="num">-</span></div><svg id="ttft-chart" viewBox="0 0 420 90" preserveAspectRatio="none"><polyline points=""/></svg></div>
  <div class="chart"><div>throughput (chunks/s): <span id="throughput" class="num">-</span></div><svg id="throughput-chart" viewBox="0 0 420 90" preserveAspectRatio="none"><polyline points=""/></svg></div>
</div>
<div id="status">updates: <span id="updates">0</span>, points: <span id="points">0</span> <span id="error"></span></div>
<script>
(() => {
  const interval = Number(new URLSearchParams(location.search).get('interval')) || 1000;
  const history = { ttft: [], throughput: [] };
  const keep = 120;
  let previous;
  let updates = 0;

  const cell = (row, text, className) => {
    const td = document.createElement('td');
    td.textContent = text;
    if (className) td.className = className;
    row.appendChild(td);
    return td;
  };
  const bar = (row, fraction, label, kind) => {
    const td = document.createElement('td');
    const outer = document.createElement('span');
    outer.className = 'bar' + (kind ? ' ' + kind : '');
    const inner = document.createElement('span');
    inner.style.width = Math.max(0, Math.min(1, fraction)) * 100 + '%';
    outer.appendChild(inner);
    const number = document.createElement('span');
    number.className = 'num';
    number.textContent = label;
    td.append(outer, number);
    row.appendChild(td);
  };
  const draw = (id, values) => {
    const line = document.querySelector('#' + id + ' polyline');
    const max = Math.max(1, ...values);
    line.setAttribute('points', values.map((v, i) => (i * 420 / Math.max(1, values.length - 1)).toFixed(1) + ',' + (88 - (v / max) * 84).toFixed(1)).join(' '));
  };

  const render = (providers) => {
    const body = document.getElementById('workers');
    body.replaceChildren();
    for (const p of providers) {
      const row = document.createElement('tr');
      const name = typeof p.metadata.name === 'string' ? p.metadata.name : p.address;
      row.dataset.worker = name;
      cell(row, name);
      cell(row, p.service + (p.version ? ' ' + p.version : ''));
      cell(row, p.address + ' ' + p.protocol);
      cell(row, typeof p.metadata.gpu === 'string' ? p.metadata.gpu : '-');
      const load = p.load || { running: 0, waiting: 0, kvUsage: 0, tokensPerSecond: 0, draining: false };
      const slots = Number(p.metadata.slots) || 0;
      bar(row, slots > 0 ? load.running / slots : 0, load.running + (slots > 0 ? ' / ' + slots : ''));
      cell(row, String(load.waiting));
      bar(row, load.kvUsage, Math.round(load.kvUsage * 100) + ' %', 'kv');
      cell(row, String(Math.round(load.tokensPerSecond))).className = 'num';
      cell(row, String(p.inFlight)).className = 'num';
      cell(row, p.breaker, 'breaker-' + p.breaker);
      cell(row, p.ejected ? 'ejected' : load.draining ? 'draining' : p.connection, p.ejected ? 'ejected' : load.draining ? 'draining' : '');
      body.appendChild(row);
    }
  };

  const poll = async () => {
    try {
      const [providers, totals] = await Promise.all([fetch('providers').then((r) => r.json()), fetch('totals').then((r) => r.json())]);
      render(providers.providers);
      const now = performance.now();
      if (previous) {
        const seconds = (now - previous.at) / 1000;
        const firsts = totals.firstChunks - previous.totals.firstChunks;
        const ttft = firsts > 0 ? ((totals.firstChunkSeconds - previous.totals.firstChunkSeconds) / firsts) * 1000 : 0;
        const throughput = (totals.chunks - previous.totals.chunks) / seconds;
        history.ttft = history.ttft.concat(ttft).slice(-keep);
        history.throughput = history.throughput.concat(throughput).slice(-keep);
        document.getElementById('ttft').textContent = firsts > 0 ? ttft.toFixed(0) : '-';
        document.getElementById('throughput').textContent = throughput.toFixed(0);
        draw('ttft-chart', history.ttft);
        draw('throughput-chart', history.throughput);
        document.getElementById('points').textContent = String(history.throughput.length);
      }
      previous = { at: now, totals };
      document.getElementById('updates').textContent = String(++updates);
      document.getElementById('error').textContent = '';
    } catch (error) {
      document.getElementById('error').textContent = 'cannot reach the admin endpoint: ' + error;
    }
    setTimeout(poll, interval);
  };
  poll();
})();
</script>
</body>
</html>
`;
