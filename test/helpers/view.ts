import type { Registry, ServiceInstance } from 'shuttle-rpc';
import { waitUntil } from './wait.js';

/** A consumer's live view of one service through a registry subscription, for assertions. */
export interface View {
  readonly instances: readonly ServiceInstance[];
  /** `host:port` of every instance, sorted. */
  addresses(): string[];
  /** Waits until `check` holds for the view; fails after `timeoutMs` naming `what`. */
  until(check: (instances: readonly ServiceInstance[]) => boolean, what: string, timeoutMs?: number): Promise<void>;
  close(): void;
}

export async function watchView(registry: Registry, service: string): Promise<View> {
  let instances: readonly ServiceInstance[] = [];
  const subscription = await registry.subscribe({ service }, (list) => (instances = list));
  return {
    get instances() {
      return instances;
    },
    addresses: () => instances.map((instance) => `${instance.host}:${instance.port}`).sort(),
    until: (check, what, timeoutMs = 10_000) => waitUntil(() => check(instances), what, timeoutMs),
    close: () => subscription.close(),
  };
}
