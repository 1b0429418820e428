import { DASHBOARD_ADMISSION_SCRIPT } from './dashboard-admission.js';

/**
 * The dashboard page's script (see dashboard.ts), kept apart from the markup. Plain browser
 * JavaScript in a string: no build step. Rates are differences of the running totals between
 * two polls; the charts keep the last `KEEP` polls, so the window is KEEP × the poll interval.
 */
export const DASHBOARD_SCRIPT = `(() => {
  // Each open tab sends three requests per poll: the floor keeps a tab (or a link with
  // ?interval=1) from turning into a request flood on the process it watches.
  const interval = Math.min(60000, Math.max(250, Number(new URLSearchParams(location.search).get('interval')) || 1000));
  const KEEP = 120;
  const MAX_SHOWN = 200;
  const W = 600, H = 180, LEFT = 52, RIGHT = 8, TOP = 10, BOTTOM = 24;
  const history = { ttft: [], throughput: [], failed: [], broken: [], shed: [], hit: [], spill: [], cold: [] };
  let previous;
  const $ = (id) => document.getElementById(id);
  /**
   * The one way a value reaches the page: as text, with every control character and every
   * character that changes the direction or visibility of text (bidi overrides, isolates and
   * marks, zero-width characters) shown as a visible <U+XXXX> mark, so that a name written
   * into the registry cannot reorder, hide or break the line of what the operator reads; cut
   * at MAX_SHOWN characters, saying how many more there were.
   */
  const visible = (value) => {
    const whole = String(value);
    // A metadata value may be 16 KiB: past MAX_SHOWN characters one cell would push the table
    // out of every screen.
    const source = whole.length > MAX_SHOWN ? whole.slice(0, MAX_SHOWN) : whole;
    let out = '';
    for (let i = 0; i < source.length; i++) {
      const code = source.charCodeAt(i);
      const hidden = code < 0x20 || (code >= 0x7f && code <= 0x9f) || code === 0x61c || (code >= 0x200b && code <= 0x200f) || (code >= 0x2028 && code <= 0x202e) || (code >= 0x2060 && code <= 0x2069) || code === 0xfeff;
      out += hidden ? '<U+' + code.toString(16).toUpperCase().padStart(4, '0') + '>' : source[i];
    }
    return whole.length > MAX_SHOWN ? out + '… (' + (whole.length - MAX_SHOWN) + ' more characters)' : out;
  };
  const text = (id, value) => { $(id).textContent = visible(value); };
  const el = (tag, value, className) => {
    const node = document.createElement(tag);
    if (value !== undefined) node.textContent = visible(value);
    if (className) node.className = className;
    return node;
  };
  const clock = (ms) => new Date(ms).toLocaleTimeString([], { hour12: false });
  const duration = (ms) => ms >= 60000 ? Math.round(ms / 60000) + ' min' : Math.round(ms / 1000) + ' s';
  const rate = (now, before, seconds) => seconds > 0 ? Math.max(0, now - before) / seconds : 0;
  const fixed = (value) => value >= 100 ? value.toFixed(0) : value.toFixed(1);

  const bar = (fraction, label, kind) => {
    const td = el('td');
    const outer = el('span', undefined, 'bar' + (kind ? ' ' + kind : ''));
    const inner = el('span');
    inner.style.width = Math.max(0, Math.min(1, fraction)) * 100 + '%';
    outer.appendChild(inner);
    td.append(outer, el('span', label));
    return td;
  };

  const svgNode = (tag, attributes, content) => {
    const node = document.createElementNS('http://www.w3.org/2000/svg', tag);
    for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, String(value));
    if (content !== undefined) node.textContent = visible(content);
    return node;
  };
  /** A line chart with a labelled y axis (unit), an x axis of seconds before now, and a legend. */
  const chart = (id, series, unit) => {
    const svg = $(id);
    svg.setAttribute('viewBox', '0 0 ' + W + ' ' + H);
    svg.replaceChildren();
    const max = Math.max(1, ...series.flatMap((line) => line.values));
    const x = (i) => LEFT + (i * (W - LEFT - RIGHT)) / (KEEP - 1);
    const y = (v) => H - BOTTOM - (v / max) * (H - TOP - BOTTOM);
    for (const fraction of [0, 0.5, 1]) {
      const value = max * fraction;
      svg.append(svgNode('line', { x1: LEFT, x2: W - RIGHT, y1: y(value), y2: y(value), class: fraction === 0 ? 'axis' : 'grid' }));
      svg.append(svgNode('text', { x: LEFT - 6, y: y(value) + 4, 'text-anchor': 'end' }, fixed(value) + ' ' + unit));
    }
    svg.append(svgNode('line', { x1: LEFT, x2: LEFT, y1: TOP, y2: H - BOTTOM, class: 'axis' }));
    const windowSeconds = (KEEP * interval) / 1000;
    for (const [i, label] of [[0, '-' + windowSeconds.toFixed(0) + ' s'], [(KEEP - 1) / 2, '-' + (windowSeconds / 2).toFixed(0) + ' s'], [KEEP - 1, 'now']]) {
      svg.append(svgNode('text', { x: x(i), y: H - 6, 'text-anchor': i === 0 ? 'start' : i === KEEP - 1 ? 'end' : 'middle' }, label));
    }
    series.forEach((line, index) => {
      const offset = KEEP - line.values.length;
      svg.append(svgNode('polyline', { stroke: line.color, 'data-series': line.label, points: line.values.map((v, i) => x(offset + i).toFixed(1) + ',' + y(v).toFixed(1)).join(' ') }));
      if (series.length > 1) {
        // Set through the style object, not a style attribute, which the page's CSP refuses.
        const legend = svgNode('text', { x: LEFT + 8 + index * 90, y: TOP + 10, fill: line.color }, line.label);
        legend.style.fill = line.color;
        svg.append(legend);
      }
    });
  };

${DASHBOARD_ADMISSION_SCRIPT}
  const renderProviders = (fleet) => {
    const body = $('workers');
    body.replaceChildren();
    const order = { up: 0, draining: 1, down: 2 };
    const entries = [...fleet.providers].sort((a, b) => order[a.state] - order[b.state]);
    for (const entry of entries) {
      const p = entry.status;
      const name = typeof p.metadata.name === 'string' ? p.metadata.name : p.address;
      const row = el('tr', undefined, entry.state === 'down' ? 'down' : '');
      row.dataset.worker = name;
      row.dataset.state = entry.state;
      const load = entry.state === 'down' ? undefined : p.load;
      const slots = Number(p.metadata.slots) || 0;
      const since = entry.state === 'up' ? '' : ' since ' + clock(entry.since);
      row.append(el('td', name), el('td', p.service + (p.version ? ' ' + p.version : '')), el('td', p.address + ' ' + p.protocol), el('td', typeof p.metadata.gpu === 'string' ? p.metadata.gpu : '-'));
      row.append(el('td', entry.state + since, 'state state-' + entry.state));
      row.append(load ? bar(slots > 0 ? load.running / slots : 0, load.running + (slots > 0 ? ' / ' + slots : '')) : el('td', '-'));
      row.append(el('td', load ? String(load.waiting) : '-', 'num'));
      row.append(load ? bar(load.kvUsage, Math.round(load.kvUsage * 100) + ' %', 'kv') : el('td', '-'));
      row.append(el('td', load ? String(Math.round(load.tokensPerSecond)) : '-', 'num'), el('td', String(p.inFlight), 'num'));
      row.append(el('td', entry.state === 'down' ? '-' : p.breaker + (p.ejected ? ', ejected' : ''), entry.state === 'down' ? '' : 'breaker-' + p.breaker + (p.ejected ? ' ejected' : '')));
      const counts = entry.counts;
      const before = previous && previous.counts[p.address];
      const seconds = previous ? (performance.now() - previous.at) / 1000 : 0;
      const withRate = (key) => String(counts[key]) + (before ? ' (' + fixed(rate(counts[key], before[key], seconds)) + '/s)' : '');
      row.append(el('td', String(counts.attempts), 'num'));
      row.append(el('td', withRate('failed'), 'num failed' + (counts.failed > 0 ? ' bad' : '')), el('td', String(counts.broken), 'num broken' + (counts.broken > 0 ? ' bad' : '')));
      row.append(el('td', withRate('shed'), 'num shed'), el('td', withRate('retries'), 'num retries'));
      row.append(el('td', entry.why || '', 'why'));
      body.appendChild(row);
    }
  };

  const renderEvents = (fleet) => {
    const body = $('event-list');
    body.replaceChildren();
    for (const event of fleet.events) {
      const row = el('tr');
      row.dataset.kind = event.kind;
      row.append(el('td', clock(event.at)), el('td', event.provider), el('td', event.kind, /died|opened|ejected/.test(event.kind) ? 'bad' : ''), el('td', event.detail, 'detail'));
      body.appendChild(row);
    }
  };

  const renderTotals = (totals, seconds) => {
    const failed = totals.failed - totals.shed;
    text('calls', String(totals.calls));
    text('errors-total', String(failed + totals.broken));
    text('broken-total', String(totals.broken));
    text('shed-total', String(totals.shed));
    text('retries-total', String(totals.retries));
    const routes = totals.routes;
    const hit = routes.hit || 0, spill = routes.spill || 0, cold = routes.cold || 0;
    text('routes', hit + ' / ' + spill + ' / ' + cold);
    text('cache-hit', hit + spill + cold > 0 ? Math.round((hit / (hit + spill + cold)) * 100) + ' %' : '-');
    if (!previous) return;
    const p = previous.totals;
    const firsts = totals.firstChunks - p.firstChunks;
    const failedRate = rate(failed, p.failed - p.shed, seconds);
    text('calls-rate', fixed(rate(totals.calls, p.calls, seconds)));
    text('errors-rate', fixed(failedRate + rate(totals.broken, p.broken, seconds)));
    text('shed-rate', fixed(rate(totals.shed, p.shed, seconds)));
    text('retries-rate', fixed(rate(totals.retries, p.retries, seconds)));
    const push = (key, value) => { history[key] = history[key].concat(value).slice(-KEEP); };
    push('ttft', firsts > 0 ? ((totals.firstChunkSeconds - p.firstChunkSeconds) / firsts) * 1000 : 0);
    push('throughput', rate(totals.chunks, p.chunks, seconds));
    push('failed', failedRate);
    push('broken', rate(totals.broken, p.broken, seconds));
    push('shed', rate(totals.shed, p.shed, seconds));
    for (const branch of ['hit', 'spill', 'cold']) push(branch, rate(routes[branch] || 0, p.routes[branch] || 0, seconds));
    chart('ttft-chart', [{ label: 'TTFT', values: history.ttft, color: '#3b82f6' }], 'ms');
    chart('throughput-chart', [{ label: 'tokens/s', values: history.throughput, color: '#0f766e' }], '/s');
    chart('errors-chart', [{ label: 'failed', values: history.failed, color: '#b91c1c' }, { label: 'broken', values: history.broken, color: '#7c2d12' }, { label: 'shed', values: history.shed, color: '#b45309' }], '/s');
    chart('routes-chart', [{ label: 'hit', values: history.hit, color: '#15803d' }, { label: 'spill', values: history.spill, color: '#b45309' }, { label: 'cold', values: history.cold, color: '#6b7280' }], '/s');
  };

  /**
   * An answer of the admin endpoint, its objects without a prototype: their keys are names from
   * requests and the registry (a tenant called constructor or toString), and a lookup by such a
   * key must find that entry or nothing, never a function of Object.prototype.
   */
  const read = (path) => fetch(path).then((response) => response.text()).then((body) => JSON.parse(body, (_key, value) => value !== null && typeof value === 'object' && !Array.isArray(value) ? Object.assign(Object.create(null), value) : value));

  const poll = async () => {
    try {
      const [fleet, totals, queue] = await Promise.all([read('fleet'), read('totals'), read('admission')]);
      const now = performance.now();
      const seconds = previous ? (now - previous.at) / 1000 : 0;
      text('retention', duration(fleet.retentionMs));
      text('window', duration(KEEP * interval));
      renderProviders(fleet);
      renderEvents(fleet);
      renderTotals(totals, seconds);
      renderAdmission(queue.admission, seconds);
      previous = { at: now, totals, counts: Object.fromEntries(fleet.providers.map((entry) => [entry.status.address, entry.counts])) };
      text('updated', clock(Date.now()));
      text('error', '');
    } catch (error) {
      text('error', 'cannot reach the admin endpoint: ' + error);
    }
    setTimeout(poll, interval);
  };
  poll();
})();`;
