import { createHash } from 'node:crypto';
import { DASHBOARD_SCRIPT } from './dashboard-script.js';

/** The page's one style sheet (its hash is in {@link DASHBOARD_CSP}). */
const DASHBOARD_STYLE = `
  * { box-sizing: border-box; }
  html, body { height: 100%; }
  body { font: 14px system-ui, sans-serif; margin: 0; padding: 1rem 1.5rem; color: #1d2430; background: #f7f8fa; display: grid; gap: 1rem; grid-template-columns: minmax(0, 1fr); grid-template-rows: auto auto auto auto 1fr; min-height: 100vh; }
  header { display: flex; align-items: baseline; gap: 1.5rem; }
  h1 { font-size: 1.2rem; margin: 0; }
  h2 { font-size: .95rem; margin: 0 0 .5rem; color: #5b6575; font-weight: 600; }
  .muted { color: #5b6575; }
  .cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(150px, 1fr)); gap: .75rem; }
  .card { background: white; border: 1px solid #e3e6eb; padding: .6rem .8rem; }
  .card .value { font-size: 1.4rem; font-variant-numeric: tabular-nums; }
  .card .label { color: #5b6575; font-size: .8rem; }
  section { background: white; border: 1px solid #e3e6eb; padding: .8rem; min-width: 0; }
  table { border-collapse: collapse; width: 100%; }
  th, td { text-align: left; padding: .35rem .5rem; border-bottom: 1px solid #e3e6eb; vertical-align: middle; white-space: nowrap; }
  th { font-weight: 600; color: #5b6575; font-size: .85rem; }
  td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
  td.why, td.detail { white-space: normal; min-width: 14rem; }
  .scroll { overflow-x: auto; }
  .bar { position: relative; width: 110px; height: 12px; background: #e8ebf0; border-radius: 6px; overflow: hidden; display: inline-block; vertical-align: middle; }
  .bar > span { position: absolute; left: 0; top: 0; bottom: 0; background: #3b82f6; }
  .bar.kv > span { background: #8b5cf6; }
  .bar + span { margin-left: .4rem; font-variant-numeric: tabular-nums; }
  tr.down td { color: #8a93a3; } tr.down td.state { color: #b91c1c; font-weight: 600; }
  .state-draining, .breaker-half-open { color: #b45309; font-weight: 600; } .breaker-open, .ejected { color: #b91c1c; font-weight: 600; } .state-up, .breaker-closed { color: #15803d; }
  .bad { color: #b91c1c; font-weight: 600; }
  .lower { display: grid; grid-template-columns: minmax(0, 2fr) minmax(0, 1fr); gap: 1rem; align-items: start; }
  .charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(340px, 1fr)); gap: 1rem; }
  .chart svg { display: block; width: 100%; height: 180px; }
  .chart .axis { stroke: #9aa3b2; stroke-width: 1; }
  .chart .grid { stroke: #eef0f3; stroke-width: 1; }
  .chart text { font-size: 11px; fill: #5b6575; }
  .chart polyline { fill: none; stroke-width: 2; }
  #events { max-height: 28rem; overflow-y: auto; }
  .admission { display: grid; grid-template-columns: repeat(auto-fit, minmax(300px, 1fr)); gap: 1rem; align-items: start; margin-bottom: 1rem; }
  h3 { font-size: .85rem; margin: 0 0 .3rem; color: #5b6575; font-weight: 600; }
  #error { color: #b91c1c; }
`;

/**
 * The live dashboard the admin endpoint serves at `/dashboard`: one self-contained page (no
 * build step, no CDN — an operator's browser may have no internet) that polls `/fleet`,
 * `/totals` and `/admission` and draws, over the whole window: the totals (calls, errors, shed,
 * retries, broken streams, routing decisions and the cache-hit rate), every provider (those that
 * left or died stay listed as down, with when and why) with its load and its error, shed and
 * retry counts and rates, charts with labelled axes over the time window, and the event list;
 * and, when the process runs an admission queue (a gateway), the queue: what waits and how long
 * admitted calls waited, by priority and for the top tenants, and what was refused, by reason
 * (dashboard-admission.ts). Every value from the JSON is put in the page with textContent, never
 * as HTML, and its control and direction-changing characters are shown as `<U+202E>` marks
 * (a worker name written into the registry cannot reorder what the operator reads). Served with
 * {@link DASHBOARD_CSP}. `?interval=ms` sets the poll interval (1 s; 250 ms to 60 s, so one
 * tab costs the endpoint at most three requests each 250 ms); the charts keep the last 120
 * polls.
 */
export const DASHBOARD_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>shuttle-rpc dashboard</title>
<style>${DASHBOARD_STYLE}</style>
</head>
<body>
<header>
  <h1>shuttle-rpc: the fleet seen by this client</h1>
  <span class="muted">window: <span id="window">-</span>; updated <span id="updated">-</span></span>
  <span id="error"></span>
</header>
<div class="cards" id="cards">
  <div class="card"><div class="value" id="calls">-</div><div class="label">calls (<span id="calls-rate">-</span>/s)</div></div>
  <div class="card"><div class="value" id="errors-total">-</div><div class="label">failed calls, broken streams included (<span id="errors-rate">-</span>/s)</div></div>
  <div class="card"><div class="value" id="broken-total">-</div><div class="label">streams broken mid-answer</div></div>
  <div class="card"><div class="value" id="shed-total">-</div><div class="label">shed for load (<span id="shed-rate">-</span>/s)</div></div>
  <div class="card"><div class="value" id="retries-total">-</div><div class="label">retries (<span id="retries-rate">-</span>/s)</div></div>
  <div class="card"><div class="value" id="cache-hit">-</div><div class="label">cache-hit routing rate (hit / all routed)</div></div>
  <div class="card"><div class="value" id="routes">-</div><div class="label">routing decisions: hit / spill / cold</div></div>
</div>
<section>
  <h2>providers (down ones stay listed for <span id="retention">-</span>)</h2>
  <div class="scroll"><table>
    <thead><tr><th>worker</th><th>service</th><th>address</th><th>GPU</th><th>state</th><th>running / slots</th><th class="num">waiting</th><th>KV cache</th><th class="num">tokens/s</th><th class="num">in flight</th><th>breaker</th><th class="num">attempts</th><th class="num">failed</th><th class="num">broken</th><th class="num">shed</th><th class="num">retries</th><th>why</th></tr></thead>
    <tbody id="workers"></tbody>
  </table></div>
</section>
<section id="admission" hidden>
  <h2>admission queue: <span id="admission-running">-</span> running, <span id="admission-queued">-</span> waiting; admitted <span id="admission-admitted">-</span> (<span id="admission-admitted-rate">-</span>/s), refused <span id="admission-refused">-</span> (<span id="admission-refused-rate">-</span>/s)</h2>
  <div class="admission">
    <div><h3>by priority</h3><table><thead><tr><th>priority</th><th class="num">waiting</th><th class="num">admitted</th><th class="num">mean wait</th><th class="num">refused</th></tr></thead><tbody id="admission-priorities"></tbody></table></div>
    <div><h3>tenants (<span id="admission-tenant-count">-</span>)</h3><table><thead><tr><th>tenant</th><th class="num">waiting</th><th class="num">admitted</th><th class="num">mean wait</th><th class="num">refused</th></tr></thead><tbody id="admission-tenants"></tbody></table></div>
    <div><h3>refused, by reason</h3><table><thead><tr><th>reason</th><th class="num">refused</th><th class="num">rate</th></tr></thead><tbody id="admission-reasons"></tbody></table></div>
  </div>
  <div class="charts">
    <section class="chart"><h2>calls waiting, by priority</h2><svg id="queue-chart"></svg></section>
    <section class="chart"><h2>mean wait of the calls admitted, by priority (ms)</h2><svg id="wait-chart"></svg></section>
  </div>
</section>
<div class="lower">
  <div class="charts">
    <section class="chart"><h2>time to first token (ms)</h2><svg id="ttft-chart"></svg></section>
    <section class="chart"><h2>throughput (tokens/s)</h2><svg id="throughput-chart"></svg></section>
    <section class="chart"><h2>failed, broken and shed calls (per second)</h2><svg id="errors-chart"></svg></section>
    <section class="chart"><h2>routing decisions (per second): hit, spill, cold</h2><svg id="routes-chart"></svg></section>
  </div>
  <section><h2>events</h2><div id="events"><table><thead><tr><th>time</th><th>provider</th><th>event</th><th>detail</th></tr></thead><tbody id="event-list"></tbody></table></div></section>
</div>
<script>${DASHBOARD_SCRIPT}</script>
</body>
</html>
`;

/** The base64 SHA-256 of an inline element's text, as a Content-Security-Policy source names it. */
function sourceHash(text: string): string {
  return `'sha256-${createHash('sha256').update(text, 'utf8').digest('base64')}'`;
}

/**
 * The Content-Security-Policy the dashboard is served with. The page's one script and one style
 * sheet are allowed by their hashes, nothing else runs or loads: no other script (an injected
 * `<script>` or an `onerror=` attribute would be refused even if a value ever reached the page
 * as HTML), no image, font, frame, plugin or form target, and fetches only to the admin endpoint
 * itself. `frame-ancestors 'none'`: no other site can frame the page (clickjacking).
 */
export const DASHBOARD_CSP = [
  "default-src 'none'",
  `script-src ${sourceHash(DASHBOARD_SCRIPT)}`,
  `style-src ${sourceHash(DASHBOARD_STYLE)}`,
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');
