import { Counter, Gauge, Histogram } from 'prom-client';
import type { AdmissionObserver, AdmissionStats } from '../admission/admission.js';
import type { ShuttleMetrics } from './metrics.js';

/** Distinct tenant label values kept before the rest are counted as `other` (tenant names come from requests). */
const MAX_TENANT_LABELS = 100;

/** Wait buckets in seconds: 1 ms to 2 minutes. */
const WAIT_BUCKETS = [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];

/**
 * Admission metrics in `metrics`' registry: `shuttle_admission_admitted_total` and
 * `shuttle_admission_wait_seconds` by priority and tenant, `shuttle_admission_refused_total`
 * by priority, tenant and reason, and `shuttle_admission_queued` (calls waiting, by priority
 * and by tenant, read from `stats` at scrape time) with `shuttle_admission_running`. Returns the
 * observer to give the queue. At most 100 tenant names become labels; later ones are `other`.
 */
export function admissionMetrics(metrics: ShuttleMetrics, stats: () => AdmissionStats): AdmissionObserver {
  const registers = [metrics.registry];
  const admitted = new Counter({
    name: 'shuttle_admission_admitted_total',
    help: 'Calls admitted, by priority and tenant.',
    labelNames: ['priority', 'tenant'],
    registers,
  });
  const refused = new Counter({
    name: 'shuttle_admission_refused_total',
    help: 'Calls refused or dropped from the admission queue, by priority, tenant and reason.',
    labelNames: ['priority', 'tenant', 'reason'],
    registers,
  });
  const wait = new Histogram({
    name: 'shuttle_admission_wait_seconds',
    help: 'Time admitted calls waited in the admission queue.',
    labelNames: ['priority', 'tenant'],
    buckets: WAIT_BUCKETS,
    registers,
  });
  const seen = new Set<string>();
  const label = (tenant: string): string => {
    if (seen.has(tenant)) return tenant;
    if (seen.size >= MAX_TENANT_LABELS) return 'other';
    seen.add(tenant);
    return tenant;
  };
  new Gauge({
    name: 'shuttle_admission_queued',
    help: 'Calls waiting in the admission queue, by priority (tenant="") and by tenant (priority="").',
    labelNames: ['priority', 'tenant'],
    registers,
    collect() {
      this.reset();
      const now = stats();
      for (const [priority, count] of now.queuedByPriority) this.set({ priority: String(priority), tenant: '' }, count);
      for (const [tenant, count] of now.queuedByTenant) this.inc({ priority: '', tenant: label(tenant) }, count);
    },
  });
  new Gauge({
    name: 'shuttle_admission_running',
    help: 'Calls admitted and not yet finished.',
    registers,
    collect() {
      this.set(stats().running);
    },
  });
  return {
    admitted: (tenant, priority, waitedMs) => {
      const labels = { priority: String(priority), tenant: label(tenant) };
      admitted.inc(labels);
      wait.observe(labels, waitedMs / 1000);
    },
    refused: (tenant, priority, reason) => refused.inc({ priority: String(priority), tenant: label(tenant), reason }),
  };
}
