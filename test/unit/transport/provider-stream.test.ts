import { describe, expect, it } from 'vitest';
import { armCallScopes, callScopesArmed, currentCallScope } from '../../../src/call/call-scope.js';
import { RpcMethod, RpcService } from '../../../src/decorators/decorators.js';
import { Dispatcher } from '../../../src/server/dispatcher.js';
import { SerializerSet } from '../../../src/serializer/serializer.js';
import { RpcCode, RpcError } from '../../../src/errors/errors.js';
import { FrameType, HEADER_BYTES, readHeader } from '../../../src/transport/frame.js';
import { createMsgpackSerializer } from '../../../src/serializer/msgpack.js';
import type { Serializer } from '../../../src/serializer/serializer.js';
import { providerWindow } from '../../../src/transport/stream-frames.js';
import { StreamCredit } from '../../../src/transport/tcp/provider-stream.js';
import { TcpCall, type TcpCallWire } from '../../../src/transport/tcp/tcp-call.js';
import type { CallHandler, ResolvedMethod } from '../../../src/transport/transport.js';

const serializer = createMsgpackSerializer({}) as Serializer;
const handler = { toCallerError: (_method: unknown, error: unknown) => RpcError.from(error) } as unknown as CallHandler;
const peer = { address: '127.0.0.1', port: 1 };

/** A streaming method whose handler returns `iterable`. */
function streaming(iterable: () => unknown): ResolvedMethod {
  return { service: 'svc', method: 'gen', stream: true, timeoutMs: undefined, invoke: async () => iterable() };
}

/** A wire that records what a call writes; `writer` stands for the connection's unsent bytes. */
function recordingWire(writer: TcpCallWire['writer'] = { overBudget: false, drained: () => Promise.resolve() }, running = 1, maxFrameBytes = 8 * 1024 * 1024) {
  const frames: Buffer[] = [];
  /** How many frames had been written at each flush. */
  const flushes: number[] = [];
  let ended = 0;
  const wire: TcpCallWire = {
    answer: () => {
      throw new Error('a stream has no unary answer');
    },
    answerError: () => {
      throw new Error('a stream has no unary answer');
    },
    write: (frame) => frames.push(frame),
    flush: () => flushes.push(frames.length),
    running,
    maxFrameBytes,
    writer,
    ended: () => ended++,
  };
  return {
    wire,
    frames,
    flushes,
    get ended() {
      return ended;
    },
  };
}

/** The type, status and body of one written frame (every write here is one whole frame). */
function frameOf(bytes: Buffer): { type: FrameType; status: number; body: Buffer } {
  const head = readHeader(bytes, 0, 1 << 30);
  return { type: head.type, status: head.status, body: bytes.subarray(HEADER_BYTES) };
}

/** The values a service's `steps` stream yields, run through a TcpCall with `deadline`. */
async function streamedValues(service: object, name: string, deadline: number, scopes: boolean): Promise<unknown[]> {
  const seen: unknown[] = [];
  const recording = Object.create(serializer) as Serializer;
  recording.encode = (value, target) => {
    seen.push(value);
    return serializer.encode(value, target);
  };
  const dispatcher = new Dispatcher([service], new SerializerSet([serializer]), [], undefined, scopes);
  const method = dispatcher.resolve({ service: name, version: '', group: '', method: 'steps', meta: {} }) as ResolvedMethod;
  await new TcpCall(recordingWire().wire, handler, method, 1, false, recording, 0, new StreamCredit(1 << 20), deadline, {}, peer).runStream(undefined);
  return seen;
}

function streamCall(wire: TcpCallWire, method: ResolvedMethod, credit = new StreamCredit(1 << 20)): TcpCall {
  return new TcpCall(wire, handler, method, 1, false, serializer, 0, credit, undefined, {}, peer);
}

describe('StreamCredit', () => {
  it('never holds more credit than its window, whatever a consumer grants', () => {
    const credit = new StreamCredit(65_535);
    credit.take(1000);
    credit.grant(0xffffffff);
    credit.grant(0xffffffff);
    expect(credit.available).toBe(65_535);
  });
});

describe('providerWindow', () => {
  it('caps a consumer’s ask at the provider’s limit, but never below half the ask (the consumer grants back in half-window steps)', () => {
    const cap = 1024 * 1024;
    expect(providerWindow(65_535, cap)).toBe(65_535);
    expect(providerWindow(cap, cap)).toBe(cap);
    expect(providerWindow(1.5 * cap, cap)).toBe(cap);
    expect(providerWindow(4 * cap, cap)).toBe(2 * cap);
    expect(providerWindow(2 ** 31 - 1, cap)).toBe(2 ** 30);
    for (const ask of [1024, 1025, 3 * cap + 1, 2 ** 31 - 1]) expect(providerWindow(ask, 1024)).toBeGreaterThanOrEqual(ask / 2);
  });
});

describe('a provider stream on tcp (the shared ProviderCall pipeline with the tcp wire)', () => {
  it('sends a stream’s opening chunks in doubling slices while it is its connection’s only call, and only its first chunk beside others', async () => {
    const burst = streaming(async function* () {
      for (let i = 0; i < 1000; i++) yield i;
    });
    const alone = recordingWire();
    await streamCall(alone.wire, burst).runStream(undefined);
    expect(alone.frames).toHaveLength(1001);
    // After 1, 2, 4 … 256 chunks; the rest (and the end) go with the connection's own slices.
    expect(alone.flushes).toEqual([1, 2, 4, 8, 16, 32, 64, 128, 256]);
    const shared = recordingWire(undefined, 3);
    await streamCall(shared.wire, burst).runStream(undefined);
    expect(shared.flushes).toEqual([1]);
  });

  it('a chunk over maxFrameBytes ends that stream RESOURCE_EXHAUSTED naming the limit, after the chunks before it', async () => {
    const wire = recordingWire(undefined, 1, 1024);
    const growing = streaming(async function* () {
      yield 'small';
      yield 'x'.repeat(2000);
      yield 'never';
    });
    await streamCall(wire.wire, growing).runStream(undefined);
    expect(wire.frames.map((frame) => frameOf(frame).type)).toEqual([FrameType.STREAM_CHUNK, FrameType.STREAM_END]);
    const end = frameOf(wire.frames[1]!);
    expect(end.status).toBe(RpcCode.RESOURCE_EXHAUSTED);
    expect(JSON.parse(end.body.toString()).message).toMatch(/chunk 1 of svc\.gen is 200\d bytes, over maxFrameBytes 1024/);
  });

  it('waits for the socket as well as for credit: nothing is written while the writer is over budget', async () => {
    let over = true;
    let drain!: () => void;
    const recorded = recordingWire({
      get overBudget() {
        return over;
      },
      drained: () => new Promise<void>((resolve) => (drain = resolve)),
    });
    async function* numbers(): AsyncGenerator<number> {
      for (let i = 0; i < 5; i++) yield i;
    }
    const done = streamCall(recorded.wire, streaming(numbers)).runStream(undefined);
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(recorded.frames).toHaveLength(0);
    over = false;
    drain();
    await done;
    // Five chunks and the end, then the call is released once.
    expect(recorded.frames.map((bytes) => frameOf(bytes).type)).toEqual([...Array(5).fill(FrameType.STREAM_CHUNK), FrameType.STREAM_END]);
    expect(recorded.ended).toBe(1);
  });

  it('an abort wakes a stream that waits for the socket, the generator is closed, and a caller that left is sent nothing', async () => {
    let closed = false;
    async function* forever(): AsyncGenerator<number> {
      try {
        for (;;) yield 1;
      } finally {
        closed = true;
      }
    }
    // Over budget once the first chunk is written, and never drained.
    const recorded = recordingWire({
      get overBudget() {
        return recorded.frames.length > 0;
      },
      drained: () => new Promise<void>(() => {}),
    });
    const credit = new StreamCredit(1 << 20);
    const call = streamCall(recorded.wire, streaming(forever), credit);
    const done = call.runStream(undefined);
    await new Promise((resolve) => setTimeout(resolve, 20));
    call.abort(new RpcError(RpcCode.CANCELLED, 'cancelled by the caller', { details: { callerLeft: true } }));
    credit.release();
    await done;
    expect(closed).toBe(true);
    expect(recorded.frames).toHaveLength(1);
    expect(recorded.ended).toBe(1);
  });

  it('the provider’s deadline ends a stream with DEADLINE_EXCEEDED naming the method; a handler error ends it with that error', async () => {
    async function* slow(): AsyncGenerator<number> {
      yield 1;
      // A handler that does not watch its signal: the abort is seen when this step ends.
      await new Promise((resolve) => setTimeout(resolve, 200));
      yield 2;
    }
    const timedOut = recordingWire();
    const call = streamCall(timedOut.wire, streaming(slow));
    const done = call.runStream(undefined);
    await new Promise((resolve) => setTimeout(resolve, 20));
    call.abort(new RpcError(RpcCode.DEADLINE_EXCEEDED, 'deadline exceeded'));
    await done;
    const last = frameOf(timedOut.frames.at(-1)!);
    expect(last.status).toBe(RpcCode.DEADLINE_EXCEEDED);
    expect(last.body.toString()).toContain('svc.gen did not complete before its deadline');

    async function* failing(): AsyncGenerator<number> {
      yield 1;
      throw new RpcError(RpcCode.FAILED_PRECONDITION, 'the model is not loaded');
    }
    const failed = recordingWire();
    await streamCall(failed.wire, streaming(failing)).runStream(undefined);
    const end = frameOf(failed.frames.at(-1)!);
    expect(end.status).toBe(RpcCode.FAILED_PRECONDITION);
    expect(end.body.toString()).toContain('the model is not loaded');
    expect(failed.ended).toBe(1);
  });

  it('a streaming method that returns no async iterable is an INTERNAL error that says what to write', async () => {
    const recorded = recordingWire();
    await streamCall(
      recorded.wire,
      streaming(() => [1, 2, 3]),
    ).runStream(undefined);
    const end = frameOf(recorded.frames[0]!);
    expect(end.status).toBe(RpcCode.INTERNAL);
    expect(end.body.toString()).toContain('svc.gen is declared stream: true but did not return an async iterable');
  });

  it('a streaming handler that creates its client in its first step follows its call from then on (the process had no client)', async () => {
    expect(callScopesArmed()).toBe(false);
    @RpcService({ name: 'lazy' })
    class Lazy {
      @RpcMethod({ stream: true })
      async *steps(): AsyncGenerator<number | null> {
        armCallScopes(); // what createClient does first
        for (let i = 0; i < 3; i++) {
          await new Promise((resolve) => setTimeout(resolve, 1));
          yield currentCallScope()?.deadline ?? null;
        }
      }
    }
    const deadline = Date.now() + 60_000;
    expect(await streamedValues(new Lazy(), 'lazy', deadline, true)).toEqual([deadline, deadline, deadline]);
    expect(callScopesArmed()).toBe(true);
  });

  it('a streaming handler runs in its call scope at every step, across its own awaits, so calls it makes inherit the deadline', async () => {
    @RpcService({ name: 'scoped' })
    class Scoped {
      @RpcMethod({ stream: true })
      async *steps(): AsyncGenerator<number | null> {
        for (let i = 0; i < 3; i++) {
          await new Promise((resolve) => setTimeout(resolve, 1));
          yield currentCallScope()?.deadline ?? null;
        }
      }
    }
    const deadline = Date.now() + 60_000;
    expect(await streamedValues(new Scoped(), 'scoped', deadline, true)).toEqual([deadline, deadline, deadline]);
    expect(await streamedValues(new Scoped(), 'scoped', deadline, false)).toEqual([null, null, null]);
  });
});
