import { readdirSync } from 'node:fs';

/** One sample of a process: heap and RSS after a full GC, libuv resources by type, open fds, and any counts the caller adds. */
export interface Sample {
  readonly t: number;
  readonly pid: number;
  readonly heapMB: number;
  readonly rssMB: number;
  readonly fds: number;
  readonly resources: Record<string, number>;
  readonly counts: Record<string, number>;
}

const gc = (globalThis as { gc?: () => void }).gc;
const started = performance.now();

/** Samples this process (run it with --expose-gc, or the heap includes garbage). */
export function sample(counts: Record<string, number> = {}): Sample {
  gc?.();
  gc?.();
  const memory = process.memoryUsage();
  const resources: Record<string, number> = {};
  for (const type of process.getActiveResourcesInfo()) resources[type] = (resources[type] ?? 0) + 1;
  let fds = -1;
  try {
    fds = readdirSync('/proc/self/fd').length;
  } catch {}
  return {
    t: Math.round((performance.now() - started) / 1000),
    pid: process.pid,
    heapMB: Math.round(memory.heapUsed / 1e5) / 10,
    rssMB: Math.round(memory.rss / 1e5) / 10,
    fds,
    resources,
    counts,
  };
}

/** The sample as one line: `t heap rss fds resources counts`. */
export function line(name: string, s: Sample): string {
  const resources = Object.entries(s.resources)
    .map(([type, n]) => `${type}=${n}`)
    .join(',');
  const counts = Object.entries(s.counts)
    .map(([key, n]) => `${key}=${n}`)
    .join(',');
  return `${name} t=${s.t}s heap=${s.heapMB}MB rss=${s.rssMB}MB fds=${s.fds} [${resources}] {${counts}}`;
}
