import net from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { Packr } from 'msgpackr';
import { RpcMethod, RpcService, createClient, createServer, type CallContext } from 'shuttle-rpc';
import { lengthPrefixed, msgpackGrpcDefinition, readLengthPrefixed } from '../common/common.js';

/*
 * The systems compared by bench:stream, each a server half that streams `n` token-sized
 * chunks (a 16-character string, msgpack-encoded by all of them) and a client half. `n` of -1
 * means "until cancelled" (a chunk per event-loop turn), for the cancel-latency phase. Every
 * server half reports when a cancel reached it through `onAbort(id)`.
 */

/** One stream request: an id (for matching cancel reports) and how many chunks to send. */
export interface StreamRequest {
  id: string;
  n: number;
}

/** A client's view of one open stream. */
export interface OpenStream {
  /** Resolves with the next chunk, or undefined at the end. */
  next(): Promise<unknown>;
  cancel(): void;
}

export interface BenchServer {
  port: number;
  close(): Promise<void>;
}

export interface BenchClient {
  open(request: StreamRequest): OpenStream;
  close(): Promise<void>;
}

export interface BenchSystem {
  serve(onAbort: (id: string) => void): Promise<BenchServer>;
  connect(port: number): Promise<BenchClient>;
}

export const TOKEN = 'token-abcdefghij';
const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

@RpcService({ name: 'bench.Tokens' })
class TokenStream {
  constructor(private readonly onAbort: (id: string) => void) {}

  @RpcMethod({ stream: true })
  async *generate(request: StreamRequest, ctx: CallContext): AsyncGenerator<string> {
    ctx.signal.addEventListener('abort', () => this.onAbort(request.id), { once: true });
    if (request.n < 0) {
      while (!ctx.signal.aborted) {
        yield TOKEN;
        await nextTurn();
      }
      return;
    }
    for (let i = 0; i < request.n; i++) yield TOKEN;
  }
}

interface Generate {
  generate(request: StreamRequest): AsyncGenerator<string>;
}

/**
 * shuttle-rpc end to end (proxy, filters, cluster, load balancer) over one of its transports:
 * `tcp` (its own framing) or `grpc` (@grpc/grpc-js underneath, with no .proto, so msgpack
 * bodies in the generic envelope — the same bodies the bare grpc-js system sends, plus the
 * envelope).
 */
function shuttleOver(transport: 'tcp' | 'grpc'): BenchSystem {
  return {
    async serve(onAbort) {
      const server = await createServer({ services: [new TokenStream(onAbort)], registry: false, transport, config: false });
      return { port: server.port, close: () => server.close() };
    },
    async connect(port) {
      const client = await createClient({ registry: `shuttle://127.0.0.1:${port}`, transport, timeoutMs: 600_000, config: false });
      const tokens = client.proxy<Generate>('bench.Tokens');
      return {
        open(request) {
          const iterator = tokens.generate(request)[Symbol.asyncIterator]();
          return {
            next: async () => {
              const step = await iterator.next();
              return step.done === true ? undefined : step.value;
            },
            cancel: () => void iterator.return?.(),
          };
        },
        close: () => client.close(),
      };
    },
  };
}

/**
 * The raw baseline: length-prefixed msgpack messages over one socket, multiplexed by stream
 * id: [id, n] opens, [id, -2] cancels; the server answers [id, chunk] … then [id, null]. No flow
 * control, no sequence numbers, no deadlines: the least a streaming RPC over TCP must do.
 */
const raw: BenchSystem = {
  async serve(onAbort) {
    const server = net.createServer({ noDelay: true }, (socket) => {
      const packr = new Packr({ useRecords: false });
      const cancelled = new Set<string>();
      // The same write batching as shuttle's (one writev per tick, sliced every 16 KiB), so
      // the baseline is the floor of framing cost, not of syscalls.
      let corked = false;
      let pending = 0;
      const uncork = (): void => {
        if (!corked) return;
        corked = false;
        pending = 0;
        socket.uncork();
      };
      const send = (message: unknown): void => {
        const frame = lengthPrefixed(packr.pack(message));
        if (!corked) {
          corked = true;
          socket.cork();
          process.nextTick(uncork);
        }
        socket.write(frame);
        pending += frame.length;
        if (pending >= 16 * 1024) uncork();
      };
      readLengthPrefixed(socket, async (body) => {
        const [id, n] = packr.unpack(body) as [string, number];
        if (n === -2) {
          cancelled.add(id);
          onAbort(id);
          return;
        }
        if (n < 0) {
          while (!cancelled.has(id) && !socket.destroyed) {
            send([id, TOKEN]);
            await nextTurn();
          }
          return;
        }
        for (let i = 0; i < n; i++) send([id, TOKEN]);
        send([id, null]);
      });
      socket.on('error', () => {});
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return { port: (server.address() as net.AddressInfo).port, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
  },
  async connect(port) {
    const packr = new Packr({ useRecords: false });
    const socket = net.connect({ host: '127.0.0.1', port, noDelay: true });
    await new Promise<void>((resolve) => socket.once('connect', resolve));
    const streams = new Map<string, { queue: unknown[]; wake: (() => void) | undefined; ended: boolean }>();
    readLengthPrefixed(socket, (body) => {
      const [id, chunk] = packr.unpack(body) as [string, unknown];
      const stream = streams.get(id);
      if (stream === undefined) return;
      if (chunk === null) stream.ended = true;
      else stream.queue.push(chunk);
      stream.wake?.();
    });
    const send = (message: unknown): void => {
      socket.write(lengthPrefixed(packr.pack(message)));
    };
    return {
      open(request) {
        const stream = { queue: [] as unknown[], wake: undefined as (() => void) | undefined, ended: false };
        streams.set(request.id, stream);
        send([request.id, request.n]);
        return {
          async next() {
            while (stream.queue.length === 0 && !stream.ended) await new Promise<void>((resolve) => (stream.wake = resolve));
            stream.wake = undefined;
            return stream.queue.shift();
          },
          cancel() {
            streams.delete(request.id);
            send([request.id, -2]);
          },
        };
      },
      close: async () => {
        socket.destroy();
      },
    };
  },
};

/** @grpc/grpc-js server streaming with the same msgpack bodies (a generic service). */
const grpcJs: BenchSystem = {
  async serve(onAbort) {
    const server = new grpc.Server();
    server.addService(definition(new Packr({ useRecords: false })), {
      generate: async (call: grpc.ServerWritableStream<StreamRequest, string>) => {
        const request = call.request;
        let cancelled = false;
        call.on('cancelled', () => {
          cancelled = true;
          onAbort(request.id);
        });
        if (request.n < 0) {
          while (!cancelled) {
            call.write(TOKEN);
            await nextTurn();
          }
          return;
        }
        // Respect grpc-js backpressure, as a real server would.
        for (let i = 0; i < request.n && !cancelled; i++) {
          if (!call.write(TOKEN)) await new Promise((resolve) => call.once('drain', resolve));
        }
        call.end();
      },
    });
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, bound) => (error ? reject(error) : resolve(bound))),
    );
    return { port, close: () => new Promise<void>((resolve) => server.tryShutdown(() => resolve())) };
  },
  async connect(port) {
    const Client = grpc.makeGenericClientConstructor(definition(new Packr({ useRecords: false })), 'Tokens');
    const client = new Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure()) as unknown as {
      generate(request: StreamRequest): grpc.ClientReadableStream<string>;
      close(): void;
    };
    return {
      open(request) {
        const call = client.generate(request);
        const queue: unknown[] = [];
        let ended = false;
        let wake: (() => void) | undefined;
        call.on('data', (chunk: unknown) => {
          queue.push(chunk);
          wake?.();
        });
        const end = (): void => {
          ended = true;
          wake?.();
        };
        call.on('end', end);
        call.on('error', end);
        return {
          async next() {
            while (queue.length === 0 && !ended) await new Promise<void>((resolve) => (wake = resolve));
            wake = undefined;
            return queue.shift();
          },
          cancel: () => call.cancel(),
        };
      },
      close: async () => client.close(),
    };
  },
};

function definition(packr: Packr): grpc.ServiceDefinition {
  return msgpackGrpcDefinition(packr, 'generate', '/bench.Tokens/Generate', true);
}

export const SYSTEMS: Record<string, BenchSystem> = { shuttle: shuttleOver('tcp'), 'shuttle-grpc': shuttleOver('grpc'), raw, 'grpc-js': grpcJs };
