import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEtcdRegistry, type EtcdRegistry } from '../../src/registry/etcd/etcd.js';
import { startEtcd, type EtcdServer } from '../helpers/etcd.js';

/*
 * A single etcd that hangs (SIGSTOP: its sockets open and silent) for seconds: a consumer's
 * watch stream is found silent and moved again and again — there is no other member — but the
 * operator is told once, not every few seconds for as long as the outage lasts.
 */
let etcd: EtcdServer;
beforeAll(async () => {
  etcd = await startEtcd();
}, 30_000);
afterAll(async () => {
  etcd?.resume();
  await etcd?.remove();
});

describe('a hung single-member etcd', () => {
  it('is reported once by a watching consumer, however often its stream is moved', { timeout: 30_000 }, async () => {
    const warnings: string[] = [];
    const onWarning = (warning: Error & { code?: string }): void => {
      if (warning.code === 'SHUTTLE_REGISTRY_WATCH') warnings.push(warning.message);
    };
    process.on('warning', onWarning);
    const registry = createEtcdRegistry({ url: etcd.url, requestTimeoutMs: 1000 }) as EtcdRegistry;
    try {
      const subscription = await registry.subscribe({ service: 'test.Hold' }, () => {});
      etcd.pause();
      // A silent stream is found within about 1.3 s (probes every third of the 1 s budget) and
      // moved; with nowhere else to go it returns to the same member and is found again.
      await new Promise((resolve) => setTimeout(resolve, 7000));
      etcd.resume();
      subscription.close();
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toMatch(/^the etcd watch stream went silent for 1000 ms: its member is hung or cut off \(member 127\.0\.0\.1:\d+\)/);
    } finally {
      process.off('warning', onWarning);
      etcd.resume();
      await registry.close();
    }
  });
});
