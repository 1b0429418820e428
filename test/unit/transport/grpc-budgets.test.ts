import { describe, expect, it } from 'vitest';
import { DEFAULT_CONNECTION_LIMITS } from '../../../src/transport/admission.js';
import { grpcServerOptions } from '../../../src/transport/grpc/grpc-server.js';
import { prefaceState } from '../../../src/transport/grpc/preface.js';
import { UnsentBudget } from '../../../src/transport/grpc/unsent-budget.js';

const MAGIC = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
const settings = (payload: number[], type = 4): Buffer => Buffer.from([0, 0, payload.length, type, 0, 0, 0, 0, 0, ...payload]);

describe('the HTTP/2 preface check', () => {
  it('tells a whole preface from a part of one, at any split, and from anything else', () => {
    const whole = Buffer.concat([MAGIC, settings([0, 3, 0, 0, 0, 100])]);
    for (let cut = 0; cut < whole.length; cut++) expect(prefaceState(whole.subarray(0, cut))).toBe('partial');
    expect(prefaceState(whole)).toBe('whole');
    expect(prefaceState(Buffer.concat([whole, Buffer.from('more frames')]))).toBe('whole');
    expect(prefaceState(Buffer.from('GET / HTTP/1.1\r\n'))).toBe('invalid');
    expect(prefaceState(Buffer.from('PRI * HTTP/1.1'))).toBe('invalid');
    // The frame after the magic must be SETTINGS, of at most the initial frame size.
    expect(prefaceState(Buffer.concat([MAGIC, settings([], 1)]))).toBe('invalid');
    expect(prefaceState(Buffer.concat([MAGIC, Buffer.from([0x01, 0, 0, 4, 0, 0, 0, 0, 0])]))).toBe('invalid');
  });
});

describe('the unsent-bytes budget of a connection', () => {
  it('admits answers up to the limit, one answer alone past it, and closes the connection to new work after a refusal until bytes are sent', () => {
    const budget = new UnsentBudget(100);
    const hold = budget.hold('a');
    expect(budget.fits('a', 250)).toBe(true);
    const sent = hold.take(250);
    expect(budget.held('a')).toBe(250);
    expect(budget.open('a')).toBe(false);
    expect(budget.open('b')).toBe(true);
    sent();
    sent();
    expect(budget.held('a')).toBe(0);
    hold.take(60);
    expect(budget.fits('a', 50)).toBe(false);
    expect(budget.open('a')).toBe(false);
    hold.close();
    expect(budget.held('a')).toBe(0);
    expect(budget.open('a')).toBe(true);
    // A closed hold counts nothing more.
    hold.take(500);
    expect(budget.held('a')).toBe(0);
  });

  it('wakes a stream waiting for room once bytes are sent, or when its call is aborted', async () => {
    const budget = new UnsentBudget(100);
    const hold = budget.hold('a');
    const sent = hold.take(100);
    let woken = false;
    const waiting = budget.room('a', new AbortController().signal).then(() => (woken = true));
    await new Promise((resolve) => setTimeout(resolve, 10));
    expect(woken).toBe(false);
    sent();
    await waiting;
    hold.take(100);
    const aborted = new AbortController();
    const stopped = budget.room('a', aborted.signal);
    aborted.abort();
    await stopped;
    expect(budget.held('a')).toBe(100);
  });
});

describe('the overdraft all connections share past their own budgets', () => {
  it("lets answers past a connection's budget go out while the shared overdraft has room, and counts it back as bytes are sent", () => {
    const budget = new UnsentBudget(100, 150);
    const a = budget.hold('a');
    const b = budget.hold('b');
    const sentA1 = a.take(90);
    expect(budget.fits('a', 60)).toBe(true);
    const sentA2 = a.take(60);
    expect(budget.overdraft).toBe(50);
    expect(budget.fits('a', 100)).toBe(true);
    a.take(100);
    expect(budget.overdraft).toBe(150);
    // The overdraft is spent: another connection over its own budget is refused.
    b.take(100);
    expect(budget.fits('b', 1)).toBe(false);
    expect(budget.open('b')).toBe(false);
    // Bytes sent give back the overdraft first (250 held: 150 of it past the budget).
    sentA1();
    expect(budget.held('a')).toBe(160);
    expect(budget.overdraft).toBe(60);
    sentA2();
    expect(budget.overdraft).toBe(0);
    a.close();
    b.close();
    expect(budget.overdraft).toBe(0);
    expect(budget.held('a') + budget.held('b')).toBe(0);
  });
});

describe('a call waiting for room on a connection at its budget', () => {
  it('is let in once bytes are sent, keeps waiting while they move, and is refused (false) when a whole stall passes with none sent', async () => {
    const budget = new UnsentBudget(100);
    const hold = budget.hold('a');
    const first = hold.take(60);
    const second = hold.take(60);
    const signal = new AbortController().signal;
    let result: boolean | undefined;
    const waiting = budget.room('a', signal, 80).then((value) => (result = value));
    // Bytes move every 50 ms (less than the 80 ms stall) but the connection stays at its budget.
    for (let i = 0; i < 4; i++) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      hold.take(10)();
    }
    expect(result).toBeUndefined();
    first();
    await waiting;
    expect(result).toBe(true);
    // Nothing sent for a whole stall: refused.
    hold.take(60);
    const started = performance.now();
    expect(await budget.room('a', signal, 80)).toBe(false);
    expect(performance.now() - started).toBeGreaterThanOrEqual(75);
    second();
    hold.close();
  });
});

describe('grpc-js server options from the connection limits', () => {
  it('maps idle, calls per connection and keepalive, and leaves out the age while it is 0', () => {
    const options = grpcServerOptions(DEFAULT_CONNECTION_LIMITS, 1024, { keepaliveTimeMs: undefined, keepaliveTimeoutMs: undefined });
    expect(options).toEqual({
      'grpc.max_receive_message_length': 1024,
      'grpc.max_connection_idle_ms': 35_000,
      'grpc.max_concurrent_streams': 10_000,
      'grpc.enable_channelz': 0,
      'grpc.keepalive_time_ms': 30_000,
      'grpc.keepalive_timeout_ms': 20_000,
    });
    const aged = grpcServerOptions({ ...DEFAULT_CONNECTION_LIMITS, maxConnectionAgeMs: 600_000, maxConnectionAgeGraceMs: 60_000 }, 1024, {
      keepaliveTimeMs: 5000,
      keepaliveTimeoutMs: 1000,
    });
    expect(aged).toMatchObject({
      'grpc.max_connection_age_ms': 600_000,
      'grpc.max_connection_age_grace_ms': 60_000,
      'grpc.keepalive_time_ms': 5000,
      'grpc.keepalive_timeout_ms': 1000,
    });
  });
});
