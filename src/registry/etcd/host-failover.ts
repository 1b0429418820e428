import { GRPCDeadlineExceededError, isRecoverableError } from 'etcd3';

/** What etcd3 hands a fault-handling policy's function. */
type Attempt<T> = (context: { signal: AbortSignal }) => PromiseLike<T> | T;

/**
 * etcd3's `faultHandling.global` policy for a cluster of `hosts` members: a request that fails
 * because the member it went to is unusable — down (refused, reset), hung (no answer before
 * the attempt's deadline, {@link attemptTimeoutMs}) or cut off from the leader ("no leader") —
 * is sent again at once to the next member of the client's shuffled order, up to one attempt
 * per member. Any other failure (etcd's own refusal, a bad request) is final.
 *
 * Why: etcd3 sends each request to one member picked at random, and its own retries and
 * circuit breakers are off (a breaker that stays open for 5 s after an outage only delays
 * re-registration). Without this, one member down or hung out of three failed a third of the
 * registry's requests — a provider's first registration, a consumer's first listing,
 * `shuttle ls` — though the cluster was serving. A lease grant sent again after a timeout may
 * leave the first grant's lease behind, holding no key, until its TTL runs out.
 */
export function hostFailover(hosts: number): { execute<T>(fn: Attempt<T>): Promise<T> } {
  return {
    async execute<T>(fn: Attempt<T>): Promise<T> {
      for (let attempt = 1; ; attempt++) {
        try {
          return await fn({ signal: new AbortController().signal });
        } catch (error) {
          if (attempt >= hosts || !memberUnusable(error)) throw error;
        }
      }
    },
  };
}

/**
 * The deadline of one attempt of a request whose whole budget is `requestTimeoutMs`: the
 * budget shared among the members, so that a hung member costs a third of it in a cluster of
 * three (at least 100 ms an attempt).
 */
export function attemptTimeoutMs(requestTimeoutMs: number, hosts: number): number {
  return Math.max(100, Math.floor(requestTimeoutMs / Math.max(1, hosts)));
}

/** Whether `error` says the member did not answer (down, hung, cut off), rather than refused the request. */
export function memberUnusable(error: unknown): boolean {
  return typeof error === 'object' && error !== null && (isRecoverableError(error as Error) || error instanceof GRPCDeadlineExceededError);
}
