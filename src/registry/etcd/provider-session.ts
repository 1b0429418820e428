import type { Etcd3, Lease } from 'etcd3';
import { RpcCode, RpcError } from '../../errors/errors.js';

/**
 * A provider's keys in etcd and the lease that keeps them alive.
 *
 * Every key is written on one lease (TTL `ttlSeconds`, kept alive every TTL/3 by the etcd3
 * client). The session remembers what it wrote, so when the lease is lost — etcd was down for
 * longer than the TTL and the keys expired — it grants a new lease and writes everything again
 * as soon as etcd answers, with no restart of the provider.
 *
 * Recovery runs at the lease's own pace: attempts at most TTL/3 apart, each given at most TTL/3
 * (at least 250 ms). When etcd comes back — a quorum regained after an outage — a new leader
 * extends the old lease by one TTL, and the keys must be on the new lease before that runs out:
 * an attempt that waited seconds on a member still down let the old lease expire first, and
 * every consumer saw the provider deleted, then put back.
 */
export class ProviderSession {
  readonly #client: Etcd3;
  readonly #ttlSeconds: number;
  readonly #requestTimeoutMs: number;
  readonly #display: string;
  /** Everything this provider wants in etcd: key -> value. */
  readonly #wanted = new Map<string, string>();
  #lease: Lease | undefined;
  #granting: Promise<Lease> | undefined;
  #recoverTimer: NodeJS.Timeout | undefined;
  #closed = false;
  /** Leases granted so far; tests and logs use it to see a re-registration happen. */
  generations = 0;

  constructor(client: Etcd3, ttlSeconds: number, requestTimeoutMs: number, display: string) {
    this.#client = client;
    this.#ttlSeconds = ttlSeconds;
    this.#requestTimeoutMs = requestTimeoutMs;
    this.#display = display;
  }

  /** Writes `key` on the lease (granting one first if needed); remembered for re-registration. */
  async put(key: string, value: string): Promise<void> {
    this.#wanted.set(key, value);
    const lease = await this.#currentLease();
    await this.#withDeadline(lease.put(key).value(value).exec(), `write ${key}`);
  }

  /**
   * Writes `key` only if a lease is alive, without waiting for one: for frequent, disposable
   * writes (load snapshots) that must never queue up behind an outage. Remembered either way.
   */
  async putIfAlive(key: string, value: string): Promise<void> {
    this.#wanted.set(key, value);
    const lease = this.#lease;
    if (lease === undefined) return;
    await this.#withDeadline(lease.put(key).value(value).exec(), `write ${key}`);
  }

  /** Deletes `key` and forgets it. */
  async delete(key: string): Promise<void> {
    this.#wanted.delete(key);
    await this.#withDeadline(this.#client.delete().key(key).exec(), `delete ${key}`);
  }

  /** Revokes the lease, which deletes every key still on it, and stops re-registering. */
  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#recoverTimer);
    const lease = this.#lease;
    this.#lease = undefined;
    if (lease !== undefined) await this.#withDeadline(lease.revoke(), 'revoke the lease').catch(() => lease.release());
  }

  #currentLease(timeoutMs = this.#requestTimeoutMs): Promise<Lease> {
    if (this.#lease !== undefined) return Promise.resolve(this.#lease);
    this.#granting ??= this.#grant(timeoutMs).finally(() => {
      this.#granting = undefined;
    });
    return this.#granting;
  }

  async #grant(timeoutMs: number): Promise<Lease> {
    const lease = this.#client.lease(this.#ttlSeconds, { autoKeepAlive: true });
    lease.on('lost', () => this.#onLost(lease));
    try {
      await this.#withDeadline(lease.grant(), 'grant a lease', timeoutMs);
    } catch (error) {
      lease.release();
      throw error;
    }
    this.generations++;
    this.#lease = lease;
    return lease;
  }

  #onLost(lease: Lease): void {
    if (this.#closed || this.#lease !== lease) return;
    this.#lease = undefined;
    this.#recover(0);
  }

  /** Grants a new lease and writes every wanted key again, retrying until etcd answers. */
  #recover(attempt: number): void {
    if (this.#closed) return;
    const pace = Math.max(250, Math.min(this.#requestTimeoutMs, (this.#ttlSeconds * 1000) / 3));
    const delay = attempt === 0 ? 0 : Math.min(2000, pace, 250 * 2 ** attempt);
    this.#recoverTimer = setTimeout(() => {
      this.#currentLease(pace)
        .then((lease) => Promise.all([...this.#wanted].map(([key, value]) => this.#withDeadline(lease.put(key).value(value).exec(), `write ${key}`, pace))))
        .catch(() => {
          // Still unreachable, or lost again while writing: drop the lease and try later.
          const lease = this.#lease;
          this.#lease = undefined;
          lease?.release();
          this.#recover(attempt + 1);
        });
    }, delay);
    this.#recoverTimer.unref();
  }

  async #withDeadline<T>(operation: Promise<T>, what: string, timeoutMs = this.#requestTimeoutMs): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        operation,
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms`)), timeoutMs);
        }),
      ]);
    } catch (error) {
      throw new RpcError(RpcCode.UNAVAILABLE, `etcd registry ${this.#display}: cannot ${what}: ${(error as Error).message}`, { cause: error });
    } finally {
      clearTimeout(timer);
    }
  }
}
