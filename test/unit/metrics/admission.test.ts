import { describe, expect, it } from 'vitest';
import { AdmissionQueue } from '../../../src/admission/queue.js';
import { admissionMetrics } from '../../../src/metrics/admission.js';
import { admissionSnapshot } from '../../../src/metrics/admission-snapshot.js';
import { ShuttleMetrics } from '../../../src/metrics/metrics.js';
import { ManualClock } from '../admission/manual-clock.js';

/** A queue of one slot and two waiting places whose observer is the admission metrics of `metrics`. */
function observedQueue(metrics: ShuttleMetrics): { clock: ManualClock; queue: AdmissionQueue } {
  const clock = new ManualClock();
  const queue: AdmissionQueue = new AdmissionQueue({
    capacity: () => 1,
    maxQueued: 2,
    tenantDefaults: { maxQueued: 2 },
    clock,
    observer: admissionMetrics(metrics, () => queue.stats()),
  });
  return { clock, queue };
}

describe('admission metrics', () => {
  it('count admissions and refusals by reason, and show the queue by priority and tenant at scrape time', async () => {
    const metrics = new ShuttleMetrics();
    const { clock, queue } = observedQueue(metrics);
    const deadline = 10_000;
    const first = await queue.admit({ tenant: 'a', tokens: 1, deadline });
    const waiting = [queue.admit({ tenant: 'b', priority: 5, tokens: 1, deadline }), queue.admit({ tenant: 'b', tokens: 1, deadline })];
    // The tenant that holds the queue is refused (another tenant would push one of its calls out).
    await expect(queue.admit({ tenant: 'b', tokens: 1, deadline })).rejects.toThrow(/admission queue is full/);
    const text = await metrics.registry.metrics();
    expect(text).toContain('shuttle_admission_admitted_total{priority="1",tenant="a"} 1');
    expect(text).toContain('shuttle_admission_refused_total{priority="1",tenant="b",reason="queue_full"} 1');
    expect(text).toContain('shuttle_admission_queued{priority="5",tenant=""} 1');
    expect(text).toContain('shuttle_admission_queued{priority="",tenant="b"} 2');
    expect(text).toContain('shuttle_admission_running 1');
    clock.advance(400);
    first.release();
    (await waiting[0]!).release();
    clock.advance(20_000);
    await expect(waiting[1]).resolves.toBeDefined();
    const later = await metrics.registry.metrics();
    expect(later).toContain('shuttle_admission_wait_seconds_sum{priority="5",tenant="b"} 0.4');
  });

  it('snapshot: the queue by priority, tenant and reason as the metrics count it; nothing when no queue reports', async () => {
    const metrics = new ShuttleMetrics();
    expect(await admissionSnapshot(metrics.registry)).toBeUndefined();
    const { clock, queue } = observedQueue(metrics);
    const deadline = 10_000;
    const first = await queue.admit({ tenant: '__proto__', tokens: 1, deadline });
    const urgent = queue.admit({ tenant: 'b', priority: 5, tokens: 1, deadline });
    void queue.admit({ tenant: 'b', tokens: 1, deadline }).catch(() => undefined);
    await expect(queue.admit({ tenant: 'b', tokens: 1, deadline })).rejects.toThrow(/admission queue is full/);
    clock.advance(250);
    first.release();
    await urgent;
    const snapshot = await admissionSnapshot(metrics.registry);
    expect(JSON.parse(JSON.stringify(snapshot))).toEqual({
      running: 1,
      queuedByPriority: { '1': 1 },
      queuedByTenant: { b: 1 },
      admittedByPriority: { '1': { calls: 1, waitSeconds: 0 }, '5': { calls: 1, waitSeconds: 0.25 } },
      admittedByTenant: { ['__proto__']: { calls: 1, waitSeconds: 0 }, b: { calls: 1, waitSeconds: 0.25 } },
      refusedByReason: { queue_full: 1 },
      refusedByPriority: { '1': 1 },
      refusedByTenant: { b: 1 },
    });
    // A tenant named __proto__ is a key like any other, not the object's prototype.
    expect(Object.getPrototypeOf(snapshot!.admittedByTenant)).toBeNull();
  });
});
