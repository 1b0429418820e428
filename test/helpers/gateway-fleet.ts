import { startEngineWorker, type EngineWorker } from 'shuttle-rpc/engine';
import { startGateway, type Gateway, type GatewayOptions } from 'shuttle-rpc/gateway';
import { startFakeEngine, type FakeEngine, type FakeEngineOptions } from 'shuttle-rpc/testing';
import { tempDir } from './tmp.js';

/** A fake OpenAI-compatible engine, a 4-slot engine worker in front of it and a gateway, over a file registry in a temp folder. */
export interface GatewayFleet {
  readonly dir: Awaited<ReturnType<typeof tempDir>>;
  readonly engine: FakeEngine;
  readonly worker: EngineWorker;
  readonly gateway: Gateway;
  /** Stops the gateway, the worker and the engine, and removes the folder. */
  close(): Promise<void>;
}

/** Starts a {@link GatewayFleet}: the engine with `engine`, the gateway (port 0, its own client) with `gateway`. */
export async function startGatewayFleet(options: { engine: FakeEngineOptions; gateway: Omit<GatewayOptions, 'port' | 'client'> }): Promise<GatewayFleet> {
  const dir = await tempDir();
  const started: Array<{ close(): Promise<void> }> = [];
  let engine: FakeEngine;
  let worker: EngineWorker;
  let gateway: Gateway;
  try {
    engine = await startFakeEngine(options.engine);
    started.push(engine);
    const registry = `file://${dir.dir}`;
    worker = await startEngineWorker({ url: engine.url, name: 'w', slots: 4, metricsUrl: false, server: { registry, host: '127.0.0.1', port: 0, log: false } });
    started.push(worker);
    gateway = await startGateway({ port: 0, client: { registry, config: false, log: false }, ...options.gateway });
  } catch (error) {
    // A failed start stops what did start: no process or socket is left behind.
    for (const piece of started.reverse()) await piece.close().catch(() => {});
    await dir.remove();
    throw error;
  }
  return {
    dir,
    engine,
    worker,
    gateway,
    async close() {
      await gateway.close();
      await worker.close();
      await engine.close();
      await dir.remove();
    },
  };
}
