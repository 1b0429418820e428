import { recordAttempt, type ClusterCall } from '../../src/cluster/cluster.js';
import { RetryBudget } from '../../src/cluster/retry-budget.js';
import type { ServiceInstance } from '../../src/registry/registry.js';
import { defaultExtensions } from '../../src/spi/extensions.js';
import { invocation, view } from './lb.js';

/** How a fake provider answers one attempt: its port, the attempt's number (1-based), its own signal. */
export type Script = (provider: ServiceInstance, attempt: number, signal: AbortSignal | undefined) => Promise<unknown>;

/** Options of {@link fakeCall}; `budget` defaults to a fresh one, as a fresh client has. */
export interface FakeCallOptions {
  idempotent?: boolean;
  budget?: RetryBudget;
  deadline?: number;
  signal?: AbortSignal;
  retries?: number;
  stream?: boolean;
  /** Decides which providers select() may return (a breaker's view); all by default. */
  available?: (provider: ServiceInstance) => boolean;
}

/** A ClusterCall over `count` fake providers (ports 1…count) whose answers `script` decides; it records attempts. */
export function fakeCall(count: number, script: Script, options: FakeCallOptions = {}) {
  const providers = Array.from({ length: count }, (_, i) => view(i + 1));
  const sent: Array<{ port: number; at: number; signal: AbortSignal | undefined }> = [];
  const base = invocation();
  const call: ClusterCall = {
    invocation: { ...base, deadline: options.deadline, signal: options.signal },
    providers,
    idempotent: options.idempotent ?? true,
    stream: options.stream ?? false,
    budget: options.budget ?? new RetryBudget(),
    retries: options.retries,
    select: (excluded) => providers.find((provider) => !excluded?.has(provider) && (options.available?.(provider.instance) ?? true)),
    send: (provider, sendOptions) => {
      sent.push({ port: provider.instance.port, at: Date.now(), signal: sendOptions?.signal });
      const budget = call.budget;
      return script(provider.instance, sent.length, sendOptions?.signal).then(
        (value) => (recordAttempt(budget, false), value),
        (error: unknown) => {
          recordAttempt(budget, true, error);
          throw error;
        },
      );
    },
  };
  return { call, sent };
}

/** A cluster strategy by spec, from the default extensions. */
export const cluster = (spec: string | { type: string; options: Record<string, unknown> }) => defaultExtensions().cluster.create(spec);
