import type { Etcd3 } from 'etcd3';
import { ProviderSession } from '../../src/registry/etcd/provider-session.js';
import { loadKey, serviceKey } from '../../src/registry/etcd/keys.js';
import type { LoadSnapshot, ServiceInstance } from '../../src/registry/instance.js';

/*
 * Simulated providers for bench:registry, in this process: each has its own ProviderSession —
 * its own lease, kept alive by the etcd3 client, its record key and its load key — exactly as
 * a provider process's etcd registry writes them, minus the process. They share one etcd3
 * client (one gRPC channel), as N processes would not; what etcd sees is the same.
 */
export const SERVICE = 'inference.LLM';

/** One simulated provider: its record and its session. */
export interface SimulatedProvider {
  readonly instance: ServiceInstance;
  readonly session: ProviderSession;
}

/** The record a simulated GPU worker announces (about 400 bytes of JSON, like a real one). */
export function workerRecord(index: number): ServiceInstance {
  return {
    service: SERVICE,
    version: '1.0.0',
    group: '',
    host: `10.${(index >> 16) & 255}.${(index >> 8) & 255}.${index & 255}`,
    port: 20880,
    protocol: 'tcp',
    serializers: ['msgpack', 'json', 'protobuf'],
    methods: [
      { name: 'generate', stream: true, idempotent: false },
      { name: 'embed', stream: false, idempotent: true },
    ],
    weight: 100,
    startTime: Date.now(),
    metadata: { model: 'llama-3-8b', gpu: 'H100', slots: 16, kvCapacityTokens: 400_000, zone: `z${index % 4}` },
  };
}

function load(index: number, tick: number): LoadSnapshot {
  return {
    timestamp: Date.now(),
    running: (index + tick) % 16,
    waiting: tick % 3,
    waitingUncachedTokens: (tick % 5) * 500,
    kvUsage: ((index + tick) % 100) / 100,
    tokensPerSecond: 800,
    draining: false,
  };
}

/** Registers a provider: grants its lease, writes its record and a first load snapshot. */
export async function startProvider(client: Etcd3, prefix: string, index: number, ttlSeconds: number): Promise<SimulatedProvider> {
  const instance = workerRecord(index);
  const session = new ProviderSession(client, ttlSeconds, 10_000, 'bench');
  await session.put(serviceKey(prefix, instance), JSON.stringify(instance));
  await session.putIfAlive(loadKey(prefix, `${instance.host}:${instance.port}`), JSON.stringify(load(index, 0)));
  return { instance, session };
}

/**
 * Every provider writes a load snapshot every `intervalMs` (spread evenly over the interval, as
 * independent processes would be) until the returned stop function is called. Counts writes
 * attempted and failed.
 */
export function reportLoads(
  prefix: string,
  providers: readonly SimulatedProvider[],
  intervalMs: number,
): { stop(): void; readonly sent: number; readonly failed: number; readonly firstError: string | undefined } {
  let tick = 0;
  let sent = 0;
  let failed = 0;
  let firstError: string | undefined;
  const timers = providers.map((provider, index) => {
    const address = `${provider.instance.host}:${provider.instance.port}`;
    const write = (): void => {
      sent++;
      provider.session.putIfAlive(loadKey(prefix, address), JSON.stringify(load(index, ++tick))).catch((error: Error) => {
        failed++;
        firstError ??= error.message;
      });
    };
    const first = setTimeout(
      () => {
        write();
        timers[index] = setInterval(write, intervalMs);
      },
      (index * intervalMs) / providers.length,
    );
    return first;
  });
  return {
    stop: () => timers.forEach((timer) => clearTimeout(timer)),
    get sent() {
      return sent;
    },
    get failed() {
      return failed;
    },
    get firstError() {
      return firstError;
    },
  };
}
