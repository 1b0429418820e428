import { describe, expect, it } from 'vitest';
import { flush, setup } from './setup.js';

describe('AdmissionQueue: admission and order', () => {
  it('admits at once while the fleet has room, then queues, and a release admits the next', async () => {
    const { queue, ask, order, running } = setup(2);
    ask('1');
    ask('2');
    ask('3');
    await flush();
    expect(order).toEqual(['1', '2']);
    expect(queue.stats()).toMatchObject({ running: 2, queued: 1, queuedTokens: 10 });
    const first = running.shift()!.ticket;
    first.release();
    first.release(); // a second release is ignored
    await flush();
    expect(order).toEqual(['1', '2', '3']);
    expect(queue.stats()).toMatchObject({ running: 2, queued: 0, queuedTokens: 0 });
  });

  it('releases in priority order, oldest first within a priority', async () => {
    const { ask, order, finish } = setup(1);
    ask('hold');
    ask('low', { priority: 0 });
    ask('normal-1');
    ask('high', { priority: 5 });
    ask('normal-2');
    await flush();
    for (let i = 0; i < 4; i++) await finish();
    expect(order).toEqual(['hold', 'high', 'normal-1', 'normal-2', 'low']);
  });

  it("runs a tenant's calls at most at its maxPriority: anonymous callers asking for 9 wait behind a keyed tenant's 5", async () => {
    const { ask, order, finish } = setup(1, { tenantDefaults: { maxPriority: 1 }, tenants: { gold: { maxPriority: 9 } } });
    ask('hold', { tenant: 'gold' });
    ask('anonymous-9', { tenant: 'ip:10.0.0.5', priority: 9 });
    ask('gold-5', { tenant: 'gold', priority: 5 });
    ask('anonymous-1', { tenant: 'ip:10.0.0.6', priority: 1 });
    await flush();
    for (let i = 0; i < 3; i++) await finish();
    // The capped call is one of priority 1, behind gold's 5 and in arrival order with its peers.
    expect(order).toEqual(['hold', 'gold-5', 'anonymous-9', 'anonymous-1']);
  });

  it('reports the time a call waited', async () => {
    const { ask, clock, finish, running } = setup(1);
    ask('1');
    ask('2');
    await flush();
    clock.advance(250);
    await finish();
    expect(running[0]!.ticket.waitedMs).toBe(250);
  });

  it('admits waiting calls when capacity grows and wake() is called', async () => {
    let slots = 0;
    const { queue, ask, order } = setup(0, { capacity: () => slots });
    ask('1');
    await flush();
    expect(order).toEqual([]);
    slots = 1;
    queue.wake();
    await flush();
    expect(order).toEqual(['1']);
  });
});

describe('AdmissionQueue: fair share across tenants', () => {
  it('a light tenant arriving behind a heavy backlog is served alternately with it, not after it', async () => {
    const { ask, order, finish } = setup(1);
    ask('heavy-0', { tenant: 'heavy' });
    for (let i = 1; i <= 20; i++) ask(`heavy-${i}`, { tenant: 'heavy' });
    for (let i = 0; i < 3; i++) ask(`light-${i}`, { tenant: 'light' });
    await flush();
    for (let i = 0; i < 8; i++) await finish();
    // Light starts level with heavy (lifted to its counter; the tie goes to the older call),
    // then the two alternate until light has nothing left.
    expect(order.slice(0, 8)).toEqual(['heavy-0', 'heavy-1', 'light-0', 'heavy-2', 'light-1', 'heavy-3', 'light-2', 'heavy-4']);
  });

  it('shares by tokens, not calls: a tenant of big calls gets fewer of them', async () => {
    const { ask, order, finish } = setup(1);
    ask('hold', { tenant: 'x' });
    for (let i = 0; i < 10; i++) ask(`big-${i}`, { tenant: 'big', tokens: 300 });
    for (let i = 0; i < 30; i++) ask(`small-${i}`, { tenant: 'small', tokens: 100 });
    await flush();
    for (let i = 0; i < 20; i++) await finish();
    const served = order.slice(1, 21);
    const bigTokens = served.filter((label) => label.startsWith('big')).length * 300;
    const smallTokens = served.filter((label) => label.startsWith('small')).length * 100;
    expect(Math.abs(bigTokens - smallTokens)).toBeLessThanOrEqual(300);
  });

  it('honours weights: a tenant of weight 3 gets three calls for each of weight 1', async () => {
    const { ask, order, finish } = setup(1, { tenants: { gold: { weight: 3 } } });
    ask('hold', { tenant: 'x' });
    for (let i = 0; i < 30; i++) ask(`gold-${i}`, { tenant: 'gold' });
    for (let i = 0; i < 30; i++) ask(`free-${i}`, { tenant: 'free' });
    await flush();
    for (let i = 0; i < 24; i++) await finish();
    const served = order.slice(1, 25);
    expect(served.filter((label) => label.startsWith('gold')).length).toBe(18);
  });

  it('corrects the estimate with the actual tokens at release', async () => {
    const { ask, order, finish, running } = setup(1);
    ask('under-0', { tenant: 'under', tokens: 10 });
    for (let i = 1; i < 5; i++) ask(`under-${i}`, { tenant: 'under', tokens: 10 });
    for (let i = 0; i < 5; i++) ask(`honest-${i}`, { tenant: 'honest', tokens: 10 });
    await flush();
    expect(running[0]!.label).toBe('under-0');
    await finish(100); // it really cost 100: under now owes 90 more
    for (let i = 0; i < 9; i++) await finish(10);
    // After the correction, honest goes until it has caught up on tokens.
    expect(order.slice(1, 11)).toEqual(['honest-0', 'honest-1', 'honest-2', 'honest-3', 'honest-4', 'under-1', 'under-2', 'under-3', 'under-4']);
  });

  it('an idle tenant banks no credit: on return it interleaves with the busy tenant', async () => {
    const { ask, order, finish } = setup(1);
    ask('a-hold', { tenant: 'a' });
    await flush();
    for (let i = 0; i < 50; i++) ask(`a-old-${i}`, { tenant: 'a' });
    await flush();
    for (let i = 0; i < 40; i++) await finish();
    order.length = 0;
    for (let i = 0; i < 5; i++) ask(`b-${i}`, { tenant: 'b' });
    await flush();
    for (let i = 0; i < 6; i++) await finish();
    const firstSix = order.slice(0, 6);
    expect(firstSix.filter((label) => label.startsWith('b')).length).toBe(3);
  });
});

describe('AdmissionQueue: a full queue makes room for the tenant that holds less of it', () => {
  it('pushes out the newest call of the tenant holding the most calls, until the two hold about the same', async () => {
    const { ask, refusals, queue } = setup(1, { maxQueued: 4, tenantDefaults: { maxQueued: 4 } });
    ask('running', { tenant: 'heavy' });
    const heavy = Array.from({ length: 4 }, (_, i) => ask(`heavy-${i}`, { tenant: 'heavy' }));
    await flush();
    expect(queue.stats().queued).toBe(4);
    const light = Array.from({ length: 3 }, (_, i) => ask(`light-${i}`, { tenant: 'light' }));
    await flush();
    // Two of heavy's newest made room; the third light call found the two even and was refused.
    expect(heavy.map((entry) => entry.error?.code)).toEqual([undefined, undefined, 8, 8]);
    expect(heavy[3]!.error?.message).toMatch(/the admission queue is full/);
    expect(light.map((entry) => entry.error?.code)).toEqual([undefined, undefined, 8]);
    expect(refusals).toEqual(['queue_full', 'queue_full', 'queue_full']);
    expect(queue.stats().queuedByTenant).toEqual(
      new Map([
        ['heavy', 2],
        ['light', 2],
      ]),
    );
  });

  it('by tokens too, and never pushes out a call of higher priority than the newcomer', async () => {
    const { ask, queue } = setup(1, { maxQueuedTokens: 100 });
    ask('running', { tenant: 'heavy' });
    const heavy = [ask('h1', { tenant: 'heavy', tokens: 50 }), ask('h2', { tenant: 'heavy', tokens: 50 })];
    await flush();
    const light = ask('l1', { tenant: 'light', tokens: 30 });
    await flush();
    expect(heavy[1]!.error?.message).toMatch(/the admission queue holds its most tokens/);
    expect(light.error).toBeUndefined();
    expect(queue.stats().queuedTokens).toBe(80);
    // An urgent tenant's calls are not pushed out for a normal one.
    const urgent = setup(1, { maxQueued: 2, tenantDefaults: { maxQueued: 2 } });
    urgent.ask('running', { tenant: 'a' });
    const high = [urgent.ask('a1', { tenant: 'a', priority: 5 }), urgent.ask('a2', { tenant: 'a', priority: 5 })];
    await flush();
    const normal = urgent.ask('b1', { tenant: 'b' });
    await flush();
    expect(high.map((entry) => entry.error)).toEqual([undefined, undefined]);
    expect(normal.error?.message).toMatch(/the admission queue is full/);
  });
});
