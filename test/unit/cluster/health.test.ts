import { describe, expect, it } from 'vitest';
import { MAX_DEPARTED_RECORDS, ProviderHealth } from '../../../src/cluster/provider-health.js';
import { RpcCode, RpcError } from '../../../src/errors/errors.js';
import { callOutcome } from '../../../src/client/outcome.js';
import { applyMock, resolveMock } from '../../../src/client/mock.js';
import { cluster, fakeCall } from '../../helpers/cluster.js';
import { invocation } from '../../helpers/lb.js';

const fail =
  (code: RpcCode = RpcCode.UNAVAILABLE) =>
  () =>
    Promise.reject(new RpcError(code, 'x'));
const ok = () => Promise.resolve('ok');

describe('circuit breakers', () => {
  it('open on the error rate over the minimum volume, then let exactly one probe through', async () => {
    const health = new ProviderHealth(
      { errorThresholdPercentage: 50, volumeThreshold: 4, resetTimeoutMs: 100, rollingWindowMs: 10_000, probeTimeoutMs: 1000 },
      undefined,
    );
    for (let i = 0; i < 4; i++) await health.run('a', fail()).catch(() => {});
    expect(health.breakerState('a')).toBe('open');
    expect(health.available('a')).toBe(false);
    await expect(health.run('a', ok)).rejects.toMatchObject({ code: RpcCode.UNAVAILABLE, details: { neverSent: true, breakerOpen: true } });
    await new Promise((resolve) => setTimeout(resolve, 130));
    expect(health.breakerState('a')).toBe('half-open');
    expect(health.available('a')).toBe(true); // the probe is free to take
    let probes = 0;
    let release!: () => void;
    const probe = health.run('a', () => {
      probes++;
      return new Promise<string>((resolve) => (release = () => resolve('ok')));
    });
    // While the probe runs the provider is unavailable, and a call sent anyway is refused
    // without reaching it.
    expect(health.available('a')).toBe(false);
    await expect(
      health.run('a', () => {
        probes++;
        return ok();
      }),
    ).rejects.toMatchObject({ details: { breakerOpen: true } });
    release();
    expect(await probe).toBe('ok');
    expect(probes).toBe(1);
    expect(health.breakerState('a')).toBe('closed');
    health.close();
  });

  it('forget the providers that left in good health; keep, within a bound, the bad news of those that left failing', async () => {
    const health = new ProviderHealth(
      { errorThresholdPercentage: 50, volumeThreshold: 2, resetTimeoutMs: 60_000, rollingWindowMs: 10_000, probeTimeoutMs: 1000 },
      { consecutiveFailures: 2, baseMs: 60_000, maxMs: 120_000, maxPercent: 100 },
    );
    for (const address of ['a', 'b', 'c']) for (let i = 0; i < 2; i++) await health.run(address, fail()).catch(() => {});
    await health.run('d', ok);
    await health.run('e', fail()).catch(() => {});
    expect(['a', 'b', 'c'].map((address) => health.breakerState(address))).toEqual(['open', 'open', 'open']);
    health.retainOnly(new Set(['b']));
    // A failing provider that leaves and rejoins the registry is not forgiven by its return.
    expect(['a', 'b', 'c', 'd'].map((address) => health.breakerState(address))).toEqual(['open', 'open', 'open', undefined]);
    expect(['a', 'b', 'c'].map((address) => health.ejection(address).ejected)).toEqual([true, true, true]);
    // One failure in a row is kept too (the run goes on where it stopped); a healthy one starts afresh.
    await health.run('e', fail()).catch(() => {});
    expect(health.ejection('e').ejected).toBe(true);
    // Churn through many failing addresses keeps at most MAX_DEPARTED_RECORDS of them.
    for (let i = 0; i < MAX_DEPARTED_RECORDS + 50; i++) await health.run(`x${i}`, fail()).catch(() => {});
    health.retainOnly(new Set(['b']));
    const kept = Array.from({ length: MAX_DEPARTED_RECORDS + 50 }, (_, i) => health.breakerState(`x${i}`)).filter((state) => state !== undefined);
    expect(kept.length).toBeLessThanOrEqual(MAX_DEPARTED_RECORDS);
    health.close();
  });

  it('send the other calls elsewhere, without spending budget, while the half-open probe runs', async () => {
    const health = new ProviderHealth(
      { errorThresholdPercentage: 50, volumeThreshold: 2, resetTimeoutMs: 50, rollingWindowMs: 10_000, probeTimeoutMs: 1000 },
      undefined,
    );
    const address = (port: number) => `10.0.0.1:${port}`;
    for (let i = 0; i < 2; i++) await health.run(address(1), fail()).catch(() => {});
    await new Promise((resolve) => setTimeout(resolve, 70));
    expect(health.breakerState(address(1))).toBe('half-open');
    let release!: () => void;
    const reached: number[] = [];
    const script = (provider: { port: number }) =>
      health.run(address(provider.port), () => {
        reached.push(provider.port);
        return provider.port === 1 ? new Promise<string>((resolve) => (release = () => resolve('probe ok'))) : Promise.resolve(`ok from ${provider.port}`);
      });
    const available = (provider: { port: number }) => health.available(address(provider.port));
    const probe = cluster('failover').invoke(fakeCall(3, script, { available }).call);
    const others = Array.from({ length: 5 }, () => fakeCall(3, script, { available }));
    const answers = await Promise.all(others.map(({ call }) => cluster('failover').invoke(call)));
    expect(answers).toEqual(Array(5).fill('ok from 2'));
    // Exactly one call reached the probing provider; no other was refused, so none retried.
    expect(reached.filter((port) => port === 1)).toHaveLength(1);
    expect(others.every(({ sent, call }) => sent.length === 1 && call.budget.retries === 0)).toBe(true);
    release();
    expect(await probe).toBe('probe ok');
    expect(health.breakerState(address(1))).toBe('closed');
    health.close();
  });

  it('count the error rate over the rolling window only, and forget it when a probe closes the breaker', async () => {
    const health = new ProviderHealth(
      // A window of a second, which the seven calls below fit in even on a loaded machine.
      { errorThresholdPercentage: 50, volumeThreshold: 4, resetTimeoutMs: 50, rollingWindowMs: 1000, probeTimeoutMs: 1000 },
      undefined,
    );
    for (let i = 0; i < 3; i++) await health.run('a', fail()).catch(() => {});
    await new Promise((resolve) => setTimeout(resolve, 1200));
    // The three failures left the window: 1 failure in 4 calls is 25 %, under the threshold
    // (counted over all seven it would be 4 in 7, over it).
    await health.run('a', fail()).catch(() => {});
    for (let i = 0; i < 3; i++) await health.run('a', ok);
    expect(health.breakerState('a')).toBe('closed');
    // 3 more failures: 4 of 7 in the window, over 50 %.
    for (let i = 0; i < 3; i++) await health.run('a', fail()).catch(() => {});
    expect(health.breakerState('a')).toBe('open');
    await new Promise((resolve) => setTimeout(resolve, 70));
    expect(await health.run('a', ok)).toBe('ok');
    expect(health.breakerState('a')).toBe('closed');
    // The failures that opened it are forgotten: one more failure (1 of 2) does not reopen it.
    await health.run('a', fail()).catch(() => {});
    expect(health.breakerState('a')).toBe('closed');
    health.close();
  });

  it('never count caller errors or load shedding against a provider', async () => {
    const health = new ProviderHealth(
      { errorThresholdPercentage: 50, volumeThreshold: 2, resetTimeoutMs: 100, rollingWindowMs: 10_000, probeTimeoutMs: 1000 },
      undefined,
    );
    for (const code of [RpcCode.INVALID_ARGUMENT, RpcCode.CANCELLED, RpcCode.RESOURCE_EXHAUSTED, RpcCode.NOT_FOUND]) {
      for (let i = 0; i < 5; i++) await health.run('a', fail(code)).catch(() => {});
    }
    expect(health.breakerState('a')).toBe('closed');
    health.close();
  });
});

describe('outlier ejection', () => {
  it('ejects after consecutive failures for an interval that doubles, at most maxPercent of providers', async () => {
    const health = new ProviderHealth(undefined, { consecutiveFailures: 3, baseMs: 40, maxMs: 1000, maxPercent: 50 });
    const items = [{ address: 'a' }, { address: 'b' }, { address: 'c' }, { address: 'd' }];
    const names = (list: readonly { address: string }[]) => list.map((item) => item.address);
    for (let i = 0; i < 3; i++) await health.run('a', fail()).catch(() => {});
    expect(health.filter(items).map((item) => item.address)).toEqual(['b', 'c', 'd']);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(health.available('a')).toBe(true);
    for (let i = 0; i < 3; i++) await health.run('a', fail()).catch(() => {});
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(health.available('a')).toBe(false); // second ejection: 80 ms
    for (let i = 0; i < 3; i++) await health.run('b', fail()).catch(() => {});
    for (let i = 0; i < 3; i++) await health.run('c', fail()).catch(() => {});
    // Three of four out is over 50 %: two stay out (those due back last), the third is picked
    // again with d rather than pile everything onto d — and not all four, which would send
    // three quarters of the calls to failing providers.
    const picked = names(health.filter(items));
    expect(picked).toHaveLength(2);
    expect(picked).toContain('d');
    // The one picked again is the one due back soonest.
    const soonest = ['a', 'b', 'c'].sort((x, y) => health.ejection(x).untilMs! - health.ejection(y).untilMs!)[0]!;
    expect(picked).toContain(soonest);
    // maxPercent 0: nothing is ever left out.
    const none = new ProviderHealth(undefined, { consecutiveFailures: 1, baseMs: 1000, maxMs: 1000, maxPercent: 0 });
    await none.run('a', fail()).catch(() => {});
    expect(none.filter(items)).toHaveLength(4);
    none.close();
    // A provider whose connection is down is left out whenever another remains.
    expect(health.filter(items, (address) => address !== 'd').map((item) => item.address)).toEqual(['d']);
    health.close();
  });

  it('failures while already ejected (in flight, or sent because all are ejected) neither re-eject nor warn again', async () => {
    const ejections: number[] = [];
    const health = new ProviderHealth(
      undefined,
      { consecutiveFailures: 3, baseMs: 200, maxMs: 10_000, maxPercent: 50 },
      {
        breaker: () => {},
        ejected: (_address, _until, times) => ejections.push(times),
      },
    );
    // 40 calls in flight together, all failing: one ejection, not thirteen.
    await Promise.all(Array.from({ length: 40 }, () => health.run('a', fail()).catch(() => {})));
    expect(ejections).toEqual([1]);
    expect(health.ejection('a').count).toBe(1);
    // A sole provider keeps being tried while ejected: still one ejection of the base length.
    for (let i = 0; i < 30; i++) await health.run('a', fail()).catch(() => {});
    expect(ejections).toEqual([1]);
    const until = health.ejection('a').untilMs!;
    expect(until - Date.now()).toBeLessThanOrEqual(200);
    health.close();
  });
});

describe('outcomes and mocks', () => {
  it('tells ok, cancelled, maybe-executed and failed apart', () => {
    expect(callOutcome()).toBe('ok');
    expect(callOutcome(new RpcError(RpcCode.CANCELLED, 'x'))).toBe('cancelled');
    expect(callOutcome(new RpcError(RpcCode.UNAVAILABLE, 'x', { details: { maybeExecuted: true } }))).toBe('maybe-executed');
    expect(callOutcome(new RpcError(RpcCode.UNAVAILABLE, 'x', { details: { neverSent: true } }))).toBe('failed');
  });

  it('uses a fallback for provider failures only, or always in force mode', async () => {
    const mock = resolveMock({ fallback: (method, _request, error) => `${method} fallback after ${error?.code}` }, 'mock')!;
    expect(await applyMock(mock, invocation(), fail())).toBe('generate fallback after 14');
    await expect(applyMock(mock, invocation(), fail(RpcCode.INVALID_ARGUMENT))).rejects.toMatchObject({ code: RpcCode.INVALID_ARGUMENT });
    let called = false;
    const force = resolveMock({ mode: 'force', value: { cached: true } }, 'mock')!;
    expect(await applyMock(force, invocation(), () => ((called = true), ok()))).toEqual({ cached: true });
    expect(called).toBe(false);
    expect(() => resolveMock({ mode: 'sometimes' } as never, 'reference x mock')).toThrow(/invalid reference x mock\.mode: "sometimes"/);
    expect(() => resolveMock({}, 'reference x mock')).toThrow(/a value or a fallback function/);
  });

  it('an overload answer pauses new calls to its provider for its hint or a pause doubling per refusal in a row; a success ends the run', async () => {
    const health = new ProviderHealth(undefined, { consecutiveFailures: 3, baseMs: 5000, maxMs: 10_000, maxPercent: 50 });
    const items = [{ address: 'a' }, { address: 'b' }, { address: 'c' }, { address: 'd' }];
    const names = (list: readonly { address: string }[]) => list.map((item) => item.address);
    const refuse = (retryAfterMs?: number) => () =>
      Promise.reject(new RpcError(RpcCode.RESOURCE_EXHAUSTED, 'full', retryAfterMs === undefined ? {} : { retryAfterMs }));
    // Three refusals in a row: paused 25, 50, then 100 ms; never ejected (shedding is no failure).
    for (let i = 0; i < 3; i++) await health.run('a', refuse()).catch(() => {});
    expect(health.ejection('a').ejected).toBe(false);
    expect(names(health.filter(items))).toEqual(['b', 'c', 'd']);
    await new Promise((resolve) => setTimeout(resolve, 30));
    expect(health.refusing('a')).toBe(true);
    await new Promise((resolve) => setTimeout(resolve, 90));
    expect(names(health.filter(items))).toEqual(['a', 'b', 'c', 'd']);
    // A success ends the run: the next refusal pauses it for the base again.
    await health.run('a', ok);
    await health.run('a', refuse()).catch(() => {});
    await new Promise((resolve) => setTimeout(resolve, 40));
    expect(health.refusing('a')).toBe(false);
    // The provider's hint is believed when it asks for longer.
    await health.run('b', refuse(300)).catch(() => {});
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(health.refusing('b')).toBe(true);
    // This consumer's own limit (local) pauses nothing: the balancer already counts its calls.
    await health
      .run('c', () => Promise.reject(new RpcError(RpcCode.RESOURCE_EXHAUSTED, 'mine', { details: { neverSent: true, local: true } })))
      .catch(() => {});
    expect(health.refusing('c')).toBe(false);
    // Every provider refusing: the call spreads over all of them; one down is still left out.
    for (const address of ['a', 'c', 'd']) await health.run(address, refuse(300)).catch(() => {});
    expect(health.filter(items)).toHaveLength(4);
    expect(names(health.filter(items, (address) => address === 'a'))).toEqual(['b', 'c', 'd']);
    health.close();
  });
});
