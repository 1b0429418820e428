import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient, RpcCode, type Proxied, type RpcClient } from 'shuttle-rpc';
import { connectRaw, type RawPeer } from 'shuttle-rpc/testing';
import { encodeFrame, FrameType, type Frame } from '../../src/transport/frame.js';
import { encodeWindowUpdate } from '../../src/transport/stream-frames.js';
import { MAX_NOOP_FRAMES } from '../../src/transport/tcp/noop-frames.js';
import type { BudgetApi } from '../fixtures/budget-service.js';
import { requestFrame, unpack } from '../helpers/frames.js';
import { startFixture, type Child } from '../helpers/process.js';
import { tempDir } from '../helpers/tmp.js';
import { waitUntil } from '../helpers/wait.js';

/*
 * Frames that cause a provider no work — heartbeats from a peer that reads the answers, cancels
 * and window updates for calls that do not run, GOAWAYs, heartbeat answers nobody asked for —
 * sent by the hundred thousand a second, against a provider process with default options; and
 * control frames with bodies the protocol says they do not have. Each such connection is
 * closed with a GOAWAY saying why, counted and logged, while a well-behaved client's calls go on.
 */
let provider: Child;
let logDir: Awaited<ReturnType<typeof tempDir>>;
let client: RpcClient;
let budget: Proxied<BudgetApi>;

beforeAll(async () => {
  logDir = await tempDir();
  provider = await startFixture('budget-provider', { BUDGET_LOG: `${logDir.dir}/provider.log` });
  client = await createClient({ registry: provider.url, timeoutMs: 5000, config: false });
  budget = client.proxy<BudgetApi>('test.Budget');
  await budget.add({ a: 1, b: 1 });
});
afterAll(async () => {
  await client?.close();
  await provider?.stop();
  await logDir?.remove();
});

/** Calls `add` one at a time until `done` settles; returns how many calls succeeded, and the failures. */
async function goodCallsUntil(done: Promise<unknown>): Promise<{ calls: number; failures: string[] }> {
  let over = false;
  void done.finally(() => (over = true));
  let calls = 0;
  const failures: string[] = [];
  while (!over) {
    try {
      expect(await budget.add({ a: calls, b: 1 })).toEqual({ sum: calls + 1 });
      calls++;
    } catch (error) {
      failures.push((error as Error).message);
    }
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
  return { calls, failures };
}

/**
 * Sends `frame(i)` in batches of 200 every 2 ms (the attack measured: 100,000 frames a second)
 * until the provider closes the connection or `ms` pass; returns the frames sent.
 */
async function flood(raw: RawPeer, frame: (i: number) => Buffer, ms: number): Promise<number> {
  const until = Date.now() + ms;
  let sent = 0;
  while (!raw.closed && Date.now() < until) {
    raw.send(Buffer.concat(Array.from({ length: 200 }, () => frame(sent++))));
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
  return sent;
}

function goawayOf(raw: RawPeer): Frame | undefined {
  return raw.frames.find((frame) => frame.type === FrameType.GOAWAY);
}

const metric = async (reason: string): Promise<number> => {
  const text = await (await fetch(`${provider.announced['admin'] as string}/metrics`)).text();
  const match = new RegExp(`shuttle_connections_refused_total\\{provider="[^"]+",transport="tcp",reason="${reason}"\\} (\\d+)\\n`).exec(text);
  return match === null ? 0 : Number(match[1]);
};

describe('a consumer flooding frames that do no work', () => {
  const floods: Array<[string, (i: number) => Buffer]> = [
    ['HEARTBEATs (the peer reads every answer)', (i) => encodeFrame(FrameType.HEARTBEAT, i)],
    ['CANCELs for ids that never ran', (i) => encodeFrame(FrameType.CANCEL, 1_000_000 + i, undefined, { status: RpcCode.CANCELLED })],
    ['WINDOW_UPDATEs for no running stream', (i) => encodeWindowUpdate(1_000_000 + i, 65_536)],
    ['GOAWAYs, again and again', () => encodeFrame(FrameType.GOAWAY, 0)],
    ['HEARTBEAT_ACKs nobody asked for', (i) => encodeFrame(FrameType.HEARTBEAT_ACK, i)],
  ];

  it('each flooding connection is closed with a GOAWAY naming the budget, counted and logged; a good client sees no error', async () => {
    const before = await metric('frameFlood');
    const peers = await Promise.all(floods.map(() => connectRaw(provider.host, provider.port)));
    const attacks = Promise.all(peers.map((raw, i) => flood(raw, floods[i]![1], 5000)));
    const good = await goodCallsUntil(attacks);
    const sent = await attacks;
    for (const [i, raw] of peers.entries()) {
      const what = floods[i]![0];
      await raw.waitClosed(2000).catch(() => {
        throw new Error(`${what}: the connection is still open after ${sent[i]} frames`);
      });
      const goaway = goawayOf(raw);
      expect(goaway?.status, what).toBe(RpcCode.RESOURCE_EXHAUSTED);
      expect(JSON.parse(goaway!.body.toString()).message).toMatch(new RegExp(`more than ${MAX_NOOP_FRAMES} frames that do no work`));
      // Closed at the budget: a few batches past it at most, not the 500,000 frames of 5 s.
      expect(sent[i], what).toBeLessThan(20_000);
      raw.close();
    }
    console.log(`no-op floods: closed after ${sent.join(', ')} frames; good client ${good.calls} calls meanwhile`);
    expect(good.failures).toEqual([]);
    expect(good.calls).toBeGreaterThan(0);
    await waitUntil(async () => (await metric('frameFlood')) - before === floods.length, 'the metric to count every flood', 3000);
    await waitUntil(
      () => readFileSync(`${logDir.dir}/provider.log`, 'utf8').includes('closed for sending more frames that do no work'),
      'the flood to be logged',
      8000,
    );
  });

  it('a well-behaved peer is never near the budget: heartbeats every 10 ms and 3,000 calls each cancelled keep their connection', async () => {
    const raw = await connectRaw(provider.host, provider.port);
    const beating = setInterval(() => raw.send(encodeFrame(FrameType.HEARTBEAT, 0)), 10);
    try {
      // A CANCEL arriving after the call's answer (the call no longer runs), as when a caller's
      // deadline and the answer cross, does no work: one per call is allowed on top of the
      // budget, and so are window updates that cross a stream's end.
      for (let round = 0; round < 30; round++) {
        const batch: Buffer[] = [];
        for (let i = 0; i < 100; i++) {
          const id = round * 100 + i + 1;
          batch.push(requestFrame(id, 'add', { a: id, b: 0 }, { service: 'test.Budget', version: '' }));
          batch.push(encodeFrame(FrameType.CANCEL, id, undefined, { status: RpcCode.CANCELLED }));
          batch.push(encodeWindowUpdate(id, 1024));
        }
        // A cancelled call is not answered: a last call, not cancelled, marks the batch's end.
        const marker = 500_000 + round;
        batch.push(requestFrame(marker, 'add', { a: 0, b: 0 }, { service: 'test.Budget', version: '' }));
        raw.send(Buffer.concat(batch));
        await raw.nextFrame((frame) => frame.requestId === marker, 5000);
      }
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(raw.closed).toBe(false);
      expect(goawayOf(raw)).toBeUndefined();
      raw.send(requestFrame(999_999, 'add', { a: 2, b: 3 }, { service: 'test.Budget', version: '' }));
      const answer = await raw.nextFrame((frame) => frame.requestId === 999_999, 2000);
      expect(unpack(answer.body)).toEqual({ sum: 5 });
    } finally {
      clearInterval(beating);
      raw.close();
    }
  });
});

describe('control frames with bodies the protocol does not allow', () => {
  const cases: Array<[string, Buffer, RegExp]> = [
    ['a HEARTBEAT with a body', encodeFrame(FrameType.HEARTBEAT, 1, Buffer.from('hi')), /HEARTBEAT body is 2 bytes, must be empty/],
    ['a HEARTBEAT_ACK with a body', encodeFrame(FrameType.HEARTBEAT_ACK, 1, Buffer.alloc(64)), /HEARTBEAT_ACK body is 64 bytes, must be empty/],
    ['a CANCEL with a body', encodeFrame(FrameType.CANCEL, 1, Buffer.alloc(1)), /CANCEL body is 1 bytes, must be empty/],
    ['a closing GOAWAY (status 0) with a body', encodeFrame(FrameType.GOAWAY, 0, Buffer.from('{}')), /GOAWAY with status 0 body is 2 bytes, must be empty/],
    ['a WINDOW_UPDATE of 3 bytes for no running stream', encodeFrame(FrameType.WINDOW_UPDATE, 42, Buffer.alloc(3)), /WINDOW_UPDATE body is 3 bytes, must be 4/],
    ['a WINDOW_UPDATE of 8 bytes for no running stream', encodeFrame(FrameType.WINDOW_UPDATE, 42, Buffer.alloc(8)), /WINDOW_UPDATE body is 8 bytes, must be 4/],
  ];
  for (const [what, frame, reason] of cases) {
    it(`${what} closes the connection with a GOAWAY naming it`, async () => {
      const raw = await connectRaw(provider.host, provider.port);
      raw.send(frame);
      const goaway = await raw.nextFrame((candidate) => candidate.type === FrameType.GOAWAY, 2000);
      expect(goaway.status).toBe(RpcCode.INTERNAL);
      expect(JSON.parse(goaway.body.toString()).message).toMatch(reason);
      await raw.waitClosed(2000);
      expect(await budget.add({ a: 1, b: 2 })).toEqual({ sum: 3 });
    });
  }

  it('shuttle-timeout-ms is a decimal integer: hex, exponents, signs, spaces and fractions are INVALID_ARGUMENT naming it', async () => {
    const raw = await connectRaw(provider.host, provider.port);
    const bad = ['0x10', '1e300', '1e3', '+5', '-5', ' 5', '5 ', '5.0', '', '0b1', '99999999999999999', 'Infinity'];
    for (const [i, value] of bad.entries()) {
      raw.send(requestFrame(i + 1, 'add', { a: 1, b: 1 }, { service: 'test.Budget', version: '', meta: { 'shuttle-timeout-ms': value } }));
      const answer = await raw.nextFrame((frame) => frame.requestId === i + 1, 2000);
      expect(answer.status, JSON.stringify(value)).toBe(RpcCode.INVALID_ARGUMENT);
      expect(JSON.parse(answer.body.toString()).message).toMatch(/metadata shuttle-timeout-ms must be a decimal integer of milliseconds/);
    }
    for (const [i, value] of ['0000100', '5000', '9007199254740991'].entries()) {
      const id = 100 + i;
      raw.send(requestFrame(id, 'add', { a: i, b: 1 }, { service: 'test.Budget', version: '', meta: { 'shuttle-timeout-ms': value } }));
      const answer = await raw.nextFrame((frame) => frame.requestId === id, 2000);
      expect(answer.status, value).toBe(RpcCode.OK);
      expect(unpack(answer.body)).toEqual({ sum: i + 1 });
    }
    expect(raw.closed).toBe(false);
    raw.close();
  });
});
