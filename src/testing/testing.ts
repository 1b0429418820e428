/**
 * shuttle-rpc/testing: helpers for testing providers, consumers and plugins against real
 * sockets on loopback.
 */
export { connectRaw, type RawPeer } from './raw-peer.js';
export { FrameType, type Frame } from '../transport/frame.js';
export { startFaultProxy, type Fault, type FaultDirection, type FaultProxy } from './fault-proxy.js';
export { startFakeEngine, type FakeEngine, type FakeEngineOptions } from './fake-engine.js';
export { FakeKvCache, type FakeKvCacheOptions } from './fake-kv-cache.js';

import { createClient, type ClientOptions, type RpcClient } from '../client/client.js';
import { createServer, type RpcServer, type ServerOptions } from '../server/server.js';

/** A provider on a free loopback port and a consumer dialling it directly. */
export interface TestPair {
  readonly server: RpcServer;
  readonly client: RpcClient;
  /** Closes the client, then the server. */
  close(): Promise<void>;
}

/** Starts `services` on 127.0.0.1 (free port) and a client whose registry is that server's url. */
export async function startTestPair(
  services: readonly object[],
  options: { server?: Omit<ServerOptions, 'services'>; client?: Omit<ClientOptions, 'registry'> } = {},
): Promise<TestPair> {
  const server = await createServer({ host: '127.0.0.1', port: 0, registry: false, ...options.server, services });
  const client = await createClient({ ...options.client, registry: server.url });
  return {
    server,
    client,
    async close() {
      await client.close();
      await server.close();
    },
  };
}

export {
  DEFAULT_ENGINE,
  SimEngine,
  VirtualClock,
  realClock,
  type Clock,
  type EngineConfig,
  type EngineLoad,
  type EngineStep,
  type SchedulingPolicy,
  type SimRequest,
  type SimUsage,
} from '../sim/sim.js';
