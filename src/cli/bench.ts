import cliProgress from 'cli-progress';
import { Cancelled } from './errors.js';
import { failureName, openTarget, type CallingOptions } from './invoke.js';
import { print } from './registry-view.js';
import { writeErr } from './terminal.js';

/** Options of `shuttle bench`. */
export interface BenchOptions extends CallingOptions {
  requests: number;
  concurrency: number;
}

/**
 * `shuttle bench SERVICE.METHOD '<json>'`: `--requests` calls, `--concurrency` at a time, with
 * a progress bar on a terminal; then calls/s, latency percentiles and failures by code (and,
 * for a stream, chunks/s and time to first chunk). Streams are read to their end. Ctrl-C stops
 * early and still prints what was measured.
 */
export async function runBench(target: string, requestText: string, options: BenchOptions): Promise<void> {
  const opened = await openTarget(target, requestText, options);
  const controller = new AbortController();
  const onInterrupt = (): void => controller.abort();
  process.once('SIGINT', onInterrupt);
  const latencies: number[] = [];
  const firstChunks: number[] = [];
  const failures = new Map<string, number>();
  /** The first failure, explained, so a run where every call fails says why. */
  let firstFailure: unknown;
  let chunks = 0;
  let issued = 0;
  const bar =
    process.stderr.isTTY && !options.json
      ? new cliProgress.SingleBar(
          { stream: process.stderr, format: 'bench [{bar}] {value}/{total} calls | {failed} failed', hideCursor: true },
          cliProgress.Presets.shades_classic,
        )
      : undefined;
  bar?.start(options.requests, 0, { failed: 0 });
  const started = performance.now();
  try {
    const worker = async (): Promise<void> => {
      while (issued < options.requests && !controller.signal.aborted) {
        issued++;
        const begin = performance.now();
        try {
          if (opened.stream) {
            let first = true;
            for await (const _ of opened.call(controller.signal) as AsyncIterable<unknown>) {
              if (first) firstChunks.push(performance.now() - begin);
              first = false;
              chunks++;
            }
          } else {
            await opened.call(controller.signal);
          }
          latencies.push(performance.now() - begin);
        } catch (error) {
          if (controller.signal.aborted) break;
          firstFailure ??= opened.explain(error);
          const name = failureName(error);
          failures.set(name, (failures.get(name) ?? 0) + 1);
        }
        bar?.increment(1, { failed: [...failures.values()].reduce((sum, n) => sum + n, 0) });
      }
    };
    await Promise.all(Array.from({ length: Math.min(options.concurrency, options.requests) }, worker));
  } finally {
    bar?.stop();
    process.off('SIGINT', onInterrupt);
    await opened.client.close();
  }
  const seconds = (performance.now() - started) / 1000;
  const failed = [...failures.values()].reduce((sum, n) => sum + n, 0);
  const summary = {
    target: `${opened.service}.${opened.method}`,
    calls: latencies.length + failed,
    ok: latencies.length,
    failed: Object.fromEntries(failures),
    seconds: round(seconds),
    callsPerSecond: round((latencies.length + failed) / seconds),
    latencyMs: percentiles(latencies),
    ...(opened.stream ? { chunksPerSecond: round(chunks / seconds), firstChunkMs: percentiles(firstChunks) } : {}),
  };
  const ms = (value: number | undefined): string => (value === undefined ? '-' : `${value} ms`);
  print(
    options,
    summary,
    ['measure', 'value'],
    [
      ['calls', `${summary.calls} (${summary.ok} ok, ${failed} failed${failed > 0 ? `: ${[...failures].map(([code, n]) => `${code} ${n}`).join(', ')}` : ''})`],
      ['throughput', `${summary.callsPerSecond} calls/s over ${summary.seconds} s, ${options.concurrency} at a time`],
      ['latency p50 / p90 / p99 / max', [summary.latencyMs.p50, summary.latencyMs.p90, summary.latencyMs.p99, summary.latencyMs.max].map(ms).join(' / ')],
      ...(opened.stream
        ? [
            ['chunks', `${summary.chunksPerSecond} chunks/s`],
            ['first chunk p50 / p99', `${ms(summary.firstChunkMs?.p50)} / ${ms(summary.firstChunkMs?.p99)}`],
          ]
        : []),
    ],
  );
  if (controller.signal.aborted) throw new Cancelled();
  if (failed > 0 && !options.json) writeErr(`first failure: ${(firstFailure as Error).message}\n`);
}

function percentiles(values: number[]): { p50?: number; p90?: number; p99?: number; max?: number } {
  if (values.length === 0) return {};
  const sorted = [...values].sort((a, b) => a - b);
  const at = (p: number): number => round(sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!);
  return { p50: at(0.5), p90: at(0.9), p99: at(0.99), max: round(sorted.at(-1)!) };
}

function round(value: number): number {
  return Math.round(value * 100) / 100;
}
