import net from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { Packr } from 'msgpackr';
import { RpcMethod, RpcService, createClient, createServer } from 'shuttle-rpc';
import { lengthPrefixed, msgpackGrpcDefinition, readLengthPrefixed } from '../common/common.js';

/*
 * The systems compared by bench:unary, each as a server half and a client half that echo one
 * binary payload. shuttle, raw and grpc-js encode the payload with msgpackr, so their comparison
 * is about the RPC machinery, not the serializer; Moleculer (moleculer.ts) runs with its own
 * serializers, as its users would.
 */

/** Sends one request and resolves with the reply. */
export type Call = (payload: Uint8Array) => Promise<unknown>;

/** A running server half. */
export interface BenchServer {
  port: number;
  close(): Promise<void>;
}

/** A connected client half. */
export interface BenchClient {
  call: Call;
  close(): Promise<void>;
}

export interface BenchSystem {
  serve(): Promise<BenchServer>;
  connect(port: number): Promise<BenchClient>;
}

@RpcService({ name: 'bench.Echo' })
class EchoBench {
  @RpcMethod()
  async echo(payload: Uint8Array): Promise<Uint8Array> {
    return payload;
  }
}

/**
 * shuttle-rpc end to end (proxy, filters, cluster, load balancer) over one of its transports:
 * `tcp` (its own framing) or `grpc` (@grpc/grpc-js underneath, with no .proto, so msgpack
 * bodies in the generic envelope — the bodies the bare grpc-js system sends, plus the envelope).
 */
function shuttleOver(transport: 'tcp' | 'grpc'): BenchSystem {
  return {
    async serve() {
      const server = await createServer({ services: [new EchoBench()], transport });
      return { port: server.port, close: () => server.close() };
    },
    async connect(port) {
      const client = await createClient({ registry: `shuttle://127.0.0.1:${port}`, transport, timeoutMs: 60_000 });
      const echo = client.proxy<EchoBench>('bench.Echo');
      return { call: (payload) => echo.echo(payload), close: () => client.close() };
    },
  };
}

/**
 * The raw baseline: a 4-byte big-endian length prefix and a msgpackr body, pipelined over one
 * socket; the server answers in order, so the client matches replies to calls FIFO. No ids,
 * no deadlines, no cancellation: the least any RPC over TCP must do.
 */
const raw: BenchSystem = {
  async serve() {
    const packr = new Packr({ useRecords: false });
    const server = net.createServer({ noDelay: true }, (socket) => {
      readLengthPrefixed(socket, (body) => socket.write(lengthPrefixed(packr.pack(packr.unpack(body)))));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return {
      port: (server.address() as net.AddressInfo).port,
      close: () => new Promise<void>((resolve) => server.close(() => resolve())),
    };
  },
  async connect(port) {
    const packr = new Packr({ useRecords: false });
    const socket = net.connect({ host: '127.0.0.1', port, noDelay: true });
    await new Promise<void>((resolve) => socket.once('connect', resolve));
    const waiting: Array<(value: unknown) => void> = [];
    readLengthPrefixed(socket, (body) => waiting.shift()!(packr.unpack(body)));
    return {
      call(payload) {
        const frame = lengthPrefixed(packr.pack(payload));
        return new Promise((resolve) => {
          waiting.push(resolve);
          socket.write(frame);
        });
      },
      close: async () => {
        socket.destroy();
      },
    };
  },
};

/** @grpc/grpc-js unary with the same msgpackr bodies (a generic service, no .proto). */
const grpcJs: BenchSystem = {
  async serve() {
    const packr = new Packr({ useRecords: false });
    const definition = grpcDefinition(packr);
    const server = new grpc.Server();
    server.addService(definition, {
      echo: (call: grpc.ServerUnaryCall<unknown, unknown>, callback: grpc.sendUnaryData<unknown>) => callback(null, call.request),
    });
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, bound) => (error ? reject(error) : resolve(bound))),
    );
    return { port, close: () => new Promise<void>((resolve) => server.tryShutdown(() => resolve())) };
  },
  async connect(port) {
    const packr = new Packr({ useRecords: false });
    const Client = grpc.makeGenericClientConstructor(grpcDefinition(packr), 'Echo');
    const client = new Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
    const echo = (client as unknown as Record<string, Function>)['echo']!.bind(client) as (
      request: unknown,
      callback: (error: grpc.ServiceError | null, reply: unknown) => void,
    ) => void;
    return {
      call: (payload) => new Promise((resolve, reject) => echo(payload, (error, reply) => (error ? reject(error) : resolve(reply)))),
      close: async () => client.close(),
    };
  },
};

function grpcDefinition(packr: Packr): grpc.ServiceDefinition {
  return msgpackGrpcDefinition(packr, 'echo', '/bench.Echo/Echo', false);
}

/**
 * A system whose module is loaded only when it runs: Moleculer's start-up would otherwise be paid
 * by every bench process, and counted in the CPU per call of the others' A/B runs.
 */
function lazy(load: () => Promise<BenchSystem>): BenchSystem {
  return {
    serve: async () => (await load()).serve(),
    connect: async (port) => (await load()).connect(port),
  };
}

export const SYSTEMS: Record<string, BenchSystem> = {
  shuttle: shuttleOver('tcp'),
  'shuttle-grpc': shuttleOver('grpc'),
  raw,
  'grpc-js': grpcJs,
  moleculer: lazy(async () => (await import('./moleculer.js')).moleculerJson),
  'moleculer-msgpack': lazy(async () => (await import('./moleculer.js')).moleculerMsgpack),
};
