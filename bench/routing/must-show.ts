import type { Summary } from './summary.js';
import type { WorkloadName } from './workloads.js';

/*
 * The targets bench:routing checks, each printed met or NOT met with its figures.
 */

/** One workload on one fleet: its figures per offered load (x saturation) and policy. */
export interface CaseResult {
  readonly name: WorkloadName;
  readonly fleet: string;
  readonly oracle: number;
  readonly byLoad: ReadonlyMap<number, ReadonlyMap<string, Summary>>;
  /** `policy@load` -> cache-hit rate with one consumer and with four. */
  readonly consumers: ReadonlyMap<string, { single: number; four: number }>;
}

const LOAD_ONLY = ['weighted-round-robin', 'least-active', 'p2c'];
const NEW = 'slo';

const verdict = (ok: boolean): string => (ok ? 'met' : '**NOT met**');

/** The target lines for every case. */
export function mustShow(results: readonly CaseResult[]): string[] {
  const lines: string[] = [];
  for (const result of results) {
    const label = `${result.name} / ${result.fleet}`;
    for (const [load, summaries] of result.byLoad) {
      // A partial run (bench options) checks only what it ran.
      if (![NEW, 'round-robin', ...LOAD_ONLY].every((name) => summaries.has(name))) continue;
      const slo = summaries.get(NEW)!;
      const rr = summaries.get('round-robin')!;
      const [bestName, best] = LOAD_ONLY.map((name) => [name, summaries.get(name)!] as const).sort((a, b) => b[1].goodput - a[1].goodput)[0]!;
      if (result.name === 'unique') {
        if (load < 1 || load > 1.3) continue;
        const ok = slo.goodput >= 0.95 * best.goodput;
        lines.push(
          `- ${label} ${load}x: goodput within 5 % of the best load-only (${bestName}): ${slo.goodput.toFixed(2)} vs ${best.goodput.toFixed(2)} — ${verdict(ok)}`,
        );
        continue;
      }
      if (load < 1 || load > 1.3 || result.name === 'hot') continue;
      const checks = [
        [
          `goodput >= 1.5x round-robin (${slo.goodput.toFixed(2)} vs ${rr.goodput.toFixed(2)}, ${(slo.goodput / rr.goodput).toFixed(2)}x)`,
          slo.goodput >= 1.5 * rr.goodput,
        ],
        [`>= 1.1x best load-only ${bestName} (${(slo.goodput / best.goodput).toFixed(2)}x)`, slo.goodput >= 1.1 * best.goodput],
        [`TTFT p99 <= 0.5x round-robin (${slo.ttft99.toFixed(0)} vs ${rr.ttft99.toFixed(0)} ms)`, slo.ttft99 <= 0.5 * rr.ttft99],
        [`0 shed (${slo.shed})`, slo.shed === 0],
        [`cache hit >= 90 % of oracle (${((slo.hit / result.oracle) * 100).toFixed(0)} %)`, slo.hit >= 0.9 * result.oracle],
        [`hottest worker <= 1.3x its slot share (${slo.hottest.toFixed(2)})`, slo.hottest <= 1.3],
      ] as const;
      lines.push(`- ${label} ${load}x: ${checks.map(([text, ok]) => `${text} ${verdict(ok)}`).join('; ')}`);
    }
    for (const [key, { single, four }] of result.consumers) {
      if (!key.startsWith(`${NEW}@`)) continue;
      const ok = four >= single - 0.05;
      lines.push(
        `- ${label} ${key.slice(NEW.length + 1)}x, 4 consumers: cache hit ${(four * 100).toFixed(1)} % vs ${(single * 100).toFixed(1)} % with one — ${verdict(ok)}`,
      );
    }
  }
  return lines;
}
