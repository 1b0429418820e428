import type { WorkerSpec } from './fleet.js';
import type { RunResult } from './simulate.js';

/*
 * bench:routing's figures: one run's numbers, and their median over seeds.
 */

/** The figures of one policy at one offered load (medians over the seeds). */
export interface Summary {
  ttft50: number;
  ttft99: number;
  itl99: number;
  /** Requests per second that met the SLO. */
  goodput: number;
  goodputs: number[];
  shed: number;
  /** Prompt tokens served from a prefix cache / all prompt tokens. */
  hit: number;
  /** The busiest worker's share of requests over its share of the fleet's slots. */
  hottest: number;
}

export function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? NaN;
}

export const median = (values: readonly number[]): number => percentile(values, 0.5);

/** The medians over seeds of each run's figures on `fleet`. */
export function summarise(runs: readonly RunResult[], fleet: readonly WorkerSpec[]): Summary {
  const totalSlots = fleet.reduce((sum, spec) => sum + spec.slots, 0);
  const each = runs.map((run) => {
    const served = Math.max(
      1,
      run.perWorker.reduce((sum, count) => sum + count, 0),
    );
    return {
      ttft50: percentile(run.ttft, 0.5),
      ttft99: percentile(run.ttft, 0.99),
      itl99: percentile(run.itl, 0.99),
      goodput: run.good / (run.durationMs / 1000),
      shed: run.shed,
      hit: run.cachedTokens / Math.max(1, run.promptTokens),
      hottest: Math.max(...run.perWorker.map((count, i) => count / served / (fleet[i]!.slots / totalSlots))),
    };
  });
  const pick = (key: keyof (typeof each)[number]): number => median(each.map((entry) => entry[key]));
  return {
    ttft50: pick('ttft50'),
    ttft99: pick('ttft99'),
    itl99: pick('itl99'),
    goodput: pick('goodput'),
    goodputs: each.map((entry) => entry.goodput),
    shed: Math.max(...each.map((entry) => entry.shed)),
    hit: pick('hit'),
    hottest: pick('hottest'),
  };
}
