import type { Registry } from 'prom-client';

/** Calls admitted, and the seconds they waited in all. */
export interface Waited {
  readonly calls: number;
  readonly waitSeconds: number;
}

/**
 * The admission queue as its metrics (admission.ts) show it right now: what waits, by priority
 * and by tenant, and the running totals of admissions (with their waits) and refusals, by
 * priority, by tenant and by reason. Tenants are the metrics' labels: at most 100 names, the
 * rest counted as `other`. It is what `/admission` serves and the dashboard draws.
 */
export interface AdmissionSnapshot {
  /** Calls admitted and not yet finished. */
  readonly running: number;
  readonly queuedByPriority: Readonly<Record<string, number>>;
  readonly queuedByTenant: Readonly<Record<string, number>>;
  readonly admittedByPriority: Readonly<Record<string, Waited>>;
  readonly admittedByTenant: Readonly<Record<string, Waited>>;
  readonly refusedByReason: Readonly<Record<string, number>>;
  readonly refusedByPriority: Readonly<Record<string, number>>;
  readonly refusedByTenant: Readonly<Record<string, number>>;
}

type Values = ReadonlyArray<{ labels: Record<string, string | number | undefined>; value: number; metricName?: string }>;

/**
 * Reads the admission metrics registered in `registry`; undefined when there are none (this
 * process runs no admission queue). Reading them runs the queue gauges' collect, as a scrape does.
 */
export async function admissionSnapshot(registry: Registry): Promise<AdmissionSnapshot | undefined> {
  const read = async (name: string): Promise<Values> => ((await registry.getSingleMetric(name)?.get())?.values ?? []) as Values;
  if (registry.getSingleMetric('shuttle_admission_running') === undefined) return undefined;
  const [running, queued, waits, refused] = await Promise.all([
    read('shuttle_admission_running'),
    read('shuttle_admission_queued'),
    read('shuttle_admission_wait_seconds'),
    read('shuttle_admission_refused_total'),
  ]);
  const queuedByPriority = dict<number>();
  const queuedByTenant = dict<number>();
  for (const { labels, value } of queued) {
    if (labels['priority'] !== '' && labels['priority'] !== undefined) add(queuedByPriority, String(labels['priority']), value);
    else if (labels['tenant'] !== '' && labels['tenant'] !== undefined) add(queuedByTenant, String(labels['tenant']), value);
  }
  const admittedByPriority = dict<Waited>();
  const admittedByTenant = dict<Waited>();
  for (const { labels, value, metricName } of waits) {
    const field =
      metricName === 'shuttle_admission_wait_seconds_count' ? 'calls' : metricName === 'shuttle_admission_wait_seconds_sum' ? 'waitSeconds' : undefined;
    if (field === undefined) continue;
    addWaited(admittedByPriority, String(labels['priority']), field, value);
    addWaited(admittedByTenant, String(labels['tenant']), field, value);
  }
  const refusedByReason = dict<number>();
  const refusedByPriority = dict<number>();
  const refusedByTenant = dict<number>();
  for (const { labels, value } of refused) {
    add(refusedByReason, String(labels['reason']), value);
    add(refusedByPriority, String(labels['priority']), value);
    add(refusedByTenant, String(labels['tenant']), value);
  }
  return {
    running: running[0]?.value ?? 0,
    queuedByPriority,
    queuedByTenant,
    admittedByPriority,
    admittedByTenant,
    refusedByReason,
    refusedByPriority,
    refusedByTenant,
  };
}

/** A map keyed by tenant names, which come from requests: no prototype, so `__proto__` is just a name. */
function dict<T>(): Record<string, T> {
  return Object.create(null) as Record<string, T>;
}

function add(into: Record<string, number>, key: string, value: number): void {
  into[key] = (into[key] ?? 0) + value;
}

function addWaited(into: Record<string, Waited>, key: string, field: keyof Waited, value: number): void {
  const before = into[key] ?? { calls: 0, waitSeconds: 0 };
  into[key] = { ...before, [field]: before[field] + value };
}
