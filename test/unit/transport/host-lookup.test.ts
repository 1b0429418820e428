import type dns from 'node:dns';
import { describe, expect, it } from 'vitest';
import { HostLookup } from '../../../src/transport/host-lookup.js';

type Answer = (error: NodeJS.ErrnoException | null, addresses: dns.LookupAddress[]) => void;

/** A system lookup that answers only when the test says so, counting what it was asked. */
function heldResolver() {
  const asked: Array<{ hostname: string; answer: Answer }> = [];
  return { asked, lookup: (hostname: string, _options: dns.LookupAllOptions, answer: Answer) => void asked.push({ hostname, answer }) };
}

function lookupOf(
  hostLookup: HostLookup,
  hostname: string,
  options: dns.LookupOptions = {},
): Promise<{ error: Error | null; address: unknown; family?: number }> {
  return new Promise((resolve) => hostLookup.lookup(hostname, options, (error, address, family) => resolve({ error, address, family })));
}

describe('HostLookup', () => {
  it('hands the resolver one name at a time, asks once for callers of one name, and reuses the answer', async () => {
    const resolver = heldResolver();
    const hosts = new HostLookup({ maxConcurrent: 1, timeoutMs: 5000, ttlMs: 60_000, failureTtlMs: 60_000, maxNames: 100, lookup: resolver.lookup });
    const first = [lookupOf(hosts, 'a.example'), lookupOf(hosts, 'a.example', { all: true })];
    const second = lookupOf(hosts, 'b.example', { family: 4 });
    expect(resolver.asked.map((entry) => entry.hostname)).toEqual(['a.example']);
    resolver.asked[0]!.answer(null, [{ address: '10.0.0.1', family: 4 }]);
    expect(await first[0]).toMatchObject({ error: null, address: '10.0.0.1', family: 4 });
    expect(await first[1]).toMatchObject({ error: null, address: [{ address: '10.0.0.1', family: 4 }] });
    expect(resolver.asked.map((entry) => entry.hostname)).toEqual(['a.example', 'b.example']);
    resolver.asked[1]!.answer(null, [
      { address: '::1', family: 6 },
      { address: '10.0.0.2', family: 4 },
    ]);
    expect(await second).toMatchObject({ error: null, address: '10.0.0.2', family: 4 });
    expect(await lookupOf(hosts, 'a.example')).toMatchObject({ address: '10.0.0.1' });
    expect(resolver.asked).toHaveLength(2);
  });

  it('fails a caller after timeoutMs, skips a name nobody waits for, and keeps it a failure for failureTtlMs', async () => {
    const resolver = heldResolver();
    const hosts = new HostLookup({ maxConcurrent: 1, timeoutMs: 30, ttlMs: 60_000, failureTtlMs: 60_000, maxNames: 100, lookup: resolver.lookup });
    const slow = lookupOf(hosts, 'slow.example');
    const queued = lookupOf(hosts, 'queued.example');
    expect((await slow).error).toMatchObject({ code: 'ETIMEOUT', message: 'looking up slow.example took longer than 30 ms' });
    expect((await queued).error).toMatchObject({ code: 'ETIMEOUT' });
    // Asked again while the slow one still holds the only slot: answered from the failure, not queued.
    expect((await lookupOf(hosts, 'queued.example')).error).toMatchObject({ code: 'ETIMEOUT' });
    resolver.asked[0]!.answer(Object.assign(new Error('timeout'), { code: 'EAI_AGAIN' }), []);
    // The queued name nobody waits for any more was never handed to the resolver.
    expect(resolver.asked.map((entry) => entry.hostname)).toEqual(['slow.example']);
    expect((await lookupOf(hosts, 'slow.example')).error).toMatchObject({ code: 'EAI_AGAIN' });
    expect(resolver.asked).toHaveLength(1);
    expect(hosts.running).toBe(0);
  });
});
