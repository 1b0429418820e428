/*
 * SVG line charts for bench:routing: one panel per figure, offered load on x, one line per policy.
 */

export interface Panel {
  readonly title: string;
  readonly unit: string;
  /** Policy -> [offered load multiple, value] points. */
  readonly lines: ReadonlyMap<string, ReadonlyArray<readonly [number, number]>>;
  /** Draw y on a log scale (latencies that span decades). */
  readonly log?: boolean;
}

const COLOURS = ['#888888', '#1f77b4', '#ff7f0e', '#2ca02c', '#9467bd', '#d62728', '#8c564b', '#17becf'];
const WIDTH = 420;
const HEIGHT = 300;

/** Panels side by side in one SVG, with a shared legend and `title` on top. */
export function chart(title: string, panels: readonly Panel[]): string {
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH * panels.length + 150}" height="${HEIGHT + 30}" font-family="sans-serif" font-size="11">`,
  ];
  parts.push(`<text x="10" y="16" font-size="13">${escapeXml(title)}</text>`);
  panels.forEach((panel, i) => parts.push(...drawPanel(panel, i * WIDTH, 30)));
  const policies = [...(panels[0]?.lines.keys() ?? [])];
  policies.forEach((policy, i) => {
    const y = 60 + i * 18;
    parts.push(
      `<line x1="${WIDTH * panels.length + 10}" y1="${y - 4}" x2="${WIDTH * panels.length + 30}" y2="${y - 4}" stroke="${COLOURS[i % COLOURS.length]}" stroke-width="2"/>`,
    );
    parts.push(`<text x="${WIDTH * panels.length + 35}" y="${y}">${escapeXml(policy)}</text>`);
  });
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}

function drawPanel(panel: Panel, left: number, top: number): string[] {
  const points = [...panel.lines.values()].flat();
  const xs = points.map(([x]) => x);
  const ys = points.map(([, y]) => y).filter((y) => Number.isFinite(y) && (!panel.log || y > 0));
  const [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  const transform = panel.log ? (v: number) => Math.log10(Math.max(v, 1)) : (v: number) => v;
  const y0 = panel.log ? transform(Math.min(...ys)) : 0;
  const y1 = Math.max(transform(Math.max(...ys)), y0 + 1e-9);
  const plot = { left: left + 55, right: left + WIDTH - 15, top: top + 20, bottom: top + HEIGHT - 40 };
  const px = (x: number): number => plot.left + ((x - x0) / Math.max(1e-9, x1 - x0)) * (plot.right - plot.left);
  const py = (y: number): number => plot.bottom - ((transform(y) - y0) / (y1 - y0)) * (plot.bottom - plot.top);
  const out = [
    `<text x="${left + WIDTH / 2}" y="${top + 10}" text-anchor="middle">${escapeXml(panel.title)}</text>`,
    `<line x1="${plot.left}" y1="${plot.bottom}" x2="${plot.right}" y2="${plot.bottom}" stroke="black"/>`,
    `<line x1="${plot.left}" y1="${plot.top}" x2="${plot.left}" y2="${plot.bottom}" stroke="black"/>`,
    `<text x="${(plot.left + plot.right) / 2}" y="${plot.bottom + 32}" text-anchor="middle">offered load (x round-robin's saturation)</text>`,
  ];
  for (const x of [...new Set(xs)]) out.push(`<text x="${px(x).toFixed(1)}" y="${plot.bottom + 14}" text-anchor="middle">${x}</text>`);
  const ticks = panel.log ? logTicks(Math.min(...ys), Math.max(...ys)) : [0, Math.max(...ys) / 2, Math.max(...ys)];
  for (const tick of ticks) {
    out.push(`<text x="${plot.left - 4}" y="${(py(tick) + 4).toFixed(1)}" text-anchor="end">${format(tick)}</text>`);
    out.push(`<line x1="${plot.left}" y1="${py(tick).toFixed(1)}" x2="${plot.right}" y2="${py(tick).toFixed(1)}" stroke="#eee"/>`);
  }
  out.push(
    `<text x="${left + 12}" y="${(plot.top + plot.bottom) / 2}" transform="rotate(-90 ${left + 12} ${(plot.top + plot.bottom) / 2})" text-anchor="middle">${escapeXml(panel.unit)}</text>`,
  );
  [...panel.lines.values()].forEach((line, i) => {
    const path = line
      .filter(([, y]) => Number.isFinite(y))
      .map(([x, y]) => `${px(x).toFixed(1)},${py(y).toFixed(1)}`)
      .join(' ');
    out.push(`<polyline fill="none" stroke="${COLOURS[i % COLOURS.length]}" stroke-width="2" points="${path}"/>`);
  });
  return out;
}

function logTicks(low: number, high: number): number[] {
  const ticks: number[] = [];
  for (let tick = 10 ** Math.floor(Math.log10(Math.max(low, 1))); tick <= high * 1.0001; tick *= 10) ticks.push(tick);
  return ticks.length > 0 ? ticks : [low, high];
}

function format(value: number): string {
  return value >= 100 ? value.toFixed(0) : value >= 10 ? value.toFixed(1) : value.toFixed(2);
}

function escapeXml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;');
}
