import type { AdmissionStats, Ticket } from '../admission/admission.js';
import { AdmissionQueue } from '../admission/queue.js';
import { linkSignals } from '../common/abort-listeners.js';
import { RpcCode, RpcError } from '../errors/errors.js';
import type { Usage } from '../inference/inference.js';
import { admissionMetrics } from '../metrics/admission.js';
import type { ShuttleMetrics } from '../metrics/metrics.js';
import { resolveGatewayAdmission, type GatewayAdmissionOptions } from './admission-options.js';
import type { Caller } from './caller.js';
import type { FleetView } from './fleet-view.js';
import { admissionFailure, BadRequest } from './openai-errors.js';

export type { GatewayAdmissionOptions } from './admission-options.js';

/** The token counts of a finished call that admission charges. */
export type ChargedUsage = Partial<Pick<Usage, 'promptTokens' | 'cachedTokens' | 'outputTokens'>>;

/** What one admitted piece of work reports back: its result and the tokens it really cost. */
export interface Admitted<T> {
  readonly value: T;
  readonly usage?: ChargedUsage | undefined;
}

/**
 * The gateway's admission: every generation and every embeddings input waits here for a worker
 * slot (the fleet's capacity is the sum of the LLM workers' `slots`, a worker without one
 * counting as unlimited), in priority order and by fair share across tenants; refused with 429
 * and Retry-After only when the queue is full or the wait would outlast the request's deadline.
 */
export class GatewayAdmission {
  readonly apiKeyTenants: ReadonlyMap<string, string>;
  readonly maxEmbeddingInputs: number;
  readonly #queue: AdmissionQueue;
  readonly #maxWaitMs: number;
  readonly #parallelism: number;
  readonly #wake: NodeJS.Timeout;

  constructor(options: GatewayAdmissionOptions, fleet: FleetView, metrics: ShuttleMetrics | undefined) {
    const resolved = resolveGatewayAdmission(options);
    this.#maxWaitMs = resolved.maxWaitMs;
    this.maxEmbeddingInputs = resolved.maxEmbeddingInputs;
    this.#parallelism = resolved.embeddingParallelism;
    this.apiKeyTenants = resolved.apiKeyTenants;
    const { maxQueued, maxQueuedTokens, tenants, tenantDefaults, reserve, overcommit } = options;
    const queue: AdmissionQueue = new AdmissionQueue({
      capacity: () => fleet.slots(),
      maxQueued,
      maxQueuedTokens,
      tenants,
      tenantDefaults,
      reserve,
      overcommit,
      observer: metrics === undefined ? undefined : admissionMetrics(metrics, () => queue.stats()),
    });
    this.#queue = queue;
    // Workers that join add slots without any call ending; look for them twice a second.
    this.#wake = setInterval(() => queue.wake(), 500).unref();
  }

  /**
   * Runs `work` once `caller` is admitted with an estimate of `tokens`; `work` gets the time left
   * of `timeoutMs` after the wait. The slot is released when `work` settles, charged with the
   * usage it reports (prompt tokens not served from cache plus output tokens); when it reports
   * none (it failed, or its client left before the worker's usage came), with what `spent`
   * counted so far, else with the estimate.
   */
  async run<T>(
    caller: Caller,
    tokens: number,
    timeoutMs: number,
    signal: AbortSignal,
    work: (timeoutMs: number) => Promise<Admitted<T>>,
    spent?: () => ChargedUsage,
  ): Promise<T> {
    const ticket = await this.#admit(caller, tokens, timeoutMs, signal);
    let usage: ChargedUsage | undefined;
    try {
      const done = await work(Math.max(1, timeoutMs - Math.round(ticket.waitedMs)));
      usage = done.usage;
      return done.value;
    } finally {
      // A client that reads a long answer and leaves just before its end must not be charged
      // only the estimate: without a count of what was sent, leaving early would buy a larger
      // share of the fleet than waiting for the usage does.
      usage ??= spent?.();
      ticket.release(usage === undefined ? undefined : chargedTokens(usage));
    }
  }

  /**
   * Runs `work` for every item, each admitted on its own (so a request of many parts counts as
   * its parts against its tenant's share), at most `embeddingParallelism` at a time; the first
   * failure aborts the siblings (waiting or running) and is thrown. `timeoutMs` is the whole
   * request's: each part gets what is left of it, so 2,048 inputs take no longer than one call
   * may.
   */
  async fanOut<I, T>(
    caller: Caller,
    items: readonly I[],
    tokensOf: (item: I) => number,
    timeoutMs: number,
    signal: AbortSignal,
    work: (item: I, timeoutMs: number, signal: AbortSignal) => Promise<Admitted<T>>,
  ): Promise<T[]> {
    if (items.length > this.maxEmbeddingInputs) {
      throw new BadRequest(
        `input has ${items.length} entries; this gateway takes at most ${this.maxEmbeddingInputs} per request (admission.maxEmbeddingInputs)`,
        'input',
      );
    }
    const siblings = new AbortController();
    // Linked, not AbortSignal.any (see linkSignals): the request's signal may be one the embedding application keeps.
    const { signal: both, release } = linkSignals(signal, siblings.signal);
    const results = new Array<T>(items.length);
    const deadline = performance.now() + timeoutMs;
    let next = 0;
    let done = 0;
    const lane = async (): Promise<void> => {
      while (next < items.length && !both.aborted) {
        const left = Math.round(deadline - performance.now());
        if (left <= 0) {
          throw new RpcError(RpcCode.DEADLINE_EXCEEDED, `the request reached its deadline (${timeoutMs} ms) with ${done} of its ${items.length} inputs done`);
        }
        const index = next++;
        results[index] = await this.run(caller, tokensOf(items[index]!), left, both, (rest) => work(items[index]!, rest, both));
        done++;
      }
    };
    const lanes = Array.from({ length: Math.min(this.#parallelism, items.length) }, () =>
      lane().catch((error: unknown) => {
        siblings.abort(error);
        throw error;
      }),
    );
    const settled = await Promise.allSettled(lanes);
    release();
    const failed = settled.find((outcome) => outcome.status === 'rejected');
    if (failed !== undefined) throw siblings.signal.aborted ? siblings.signal.reason : (failed as PromiseRejectedResult).reason;
    if (signal.aborted) throw signal.reason;
    return results;
  }

  stats(): AdmissionStats {
    return this.#queue.stats();
  }

  close(): void {
    clearInterval(this.#wake);
  }

  async #admit(caller: Caller, tokens: number, timeoutMs: number, signal: AbortSignal): Promise<Ticket> {
    const deadline = performance.now() + Math.min(timeoutMs, this.#maxWaitMs);
    try {
      return await this.#queue.admit({ tenant: caller.tenant, priority: caller.priority, tokens, deadline, signal });
    } catch (error) {
      throw admissionFailure(error);
    }
  }
}

/** The tokens a call cost the fleet: prompt tokens not served from cache plus output tokens. */
export function chargedTokens(usage: ChargedUsage): number {
  return Math.max(0, (usage.promptTokens ?? 0) - (usage.cachedTokens ?? 0)) + (usage.outputTokens ?? 0);
}
