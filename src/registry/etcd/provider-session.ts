import { EtcdLeaseInvalidError, type Etcd3, type Lease } from 'etcd3';
import { RpcCode, RpcError } from '../../errors/errors.js';
import { etcdReason } from './etcd-reason.js';
import { memberUnusable } from './host-failover.js';
import { monotonicNow } from '../../common/clock.js';

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
 *
 * Anyone who can write under the prefix can also delete a key while the lease lives (or put it
 * again on no lease, or on another). After each successful keep-alive — every TTL/3, and never
 * more often than once a second — the session asks etcd which keys its lease holds (one
 * LeaseTimeToLive request, however many keys) and writes back, on the same lease, each wanted
 * key that is not among them, as Dubbo and Nacos re-register a deleted node. A deleter cannot
 * make it spin: one check and at most one write per wanted key per keep-alive, whatever it does.
 *
 * A hung member (stopped, stalled on its disk: its sockets open and silent) holds the lease's
 * keep-alive stream if the client picked it, and etcd3 notices only after a whole TTL without
 * an answer — when the lease has just run out on the leader, so consumers see the provider
 * deleted and put back. So the session watches the renewals itself: once half a TTL has passed
 * since the last one (a keep-alive is due every third), it sends single keep-alives, each to a
 * member picked at random and given a quarter TTL (at least 250 ms), at most three at a time,
 * every twelfth of a TTL (at least 100 ms), until one is answered.
 */
export class ProviderSession {
  readonly #client: Etcd3;
  readonly #ttlSeconds: number;
  readonly #requestTimeoutMs: number;
  readonly #display: string;
  /** Everything this provider wants in etcd: key -> value. */
  readonly #wanted = new Map<string, string>();
  /**
   * Keys whose latest write is known to have reached etcd on the current lease. Only these are
   * checked: a key whose own write is still on its way is missing for a reason.
   */
  readonly #settled = new Set<string>();
  #lease: Lease | undefined;
  /** The current lease's ID, as etcd gave it. */
  #leaseId: string | undefined;
  /** The check of the lease's keys under way, if any (see {@link #audit}). */
  #auditing: Promise<void> | undefined;
  #lastAudit = 0;
  #granting: Promise<Lease> | undefined;
  #recoverTimer: NodeJS.Timeout | undefined;
  /** When the current lease was last granted or renewed, by this process's clock. */
  #renewedAt = 0;
  /** Checks that renewals keep coming (see {@link #checkRenewal}). */
  #renewalCheck: NodeJS.Timeout | undefined;
  /** Single keep-alives in flight, sent because renewals stopped coming. */
  #rescues = 0;
  /** Whether the last request went unanswered (etcd down, hung or cut off), until one is answered. */
  #unanswered = false;
  #closed = false;
  readonly #onRestored: (key: string) => void;
  readonly #report: (message: string) => void;
  /** When the lease was lost, while it is being replaced (for the report once it is). */
  #lostAt: number | undefined;
  /** Leases granted so far; tests and logs use it to see a re-registration happen. */
  generations = 0;
  /** Keys written back after someone else removed them from the lease. */
  restored = 0;

  /**
   * @param onRestored told of each key written back after it went missing from the lease
   * @param report told, once each, that the lease was lost and that the keys are back on a new one
   */
  constructor(
    client: Etcd3,
    ttlSeconds: number,
    requestTimeoutMs: number,
    display: string,
    onRestored: (key: string) => void = () => {},
    report: (message: string) => void = () => {},
  ) {
    this.#client = client;
    this.#ttlSeconds = ttlSeconds;
    this.#requestTimeoutMs = requestTimeoutMs;
    this.#display = display;
    this.#onRestored = onRestored;
    this.#report = report;
  }

  /** Writes `key` on the lease (granting one first if needed); remembered for re-registration. */
  async put(key: string, value: string): Promise<void> {
    this.#wanted.set(key, value);
    const lease = await this.#currentLease();
    await this.#write(lease, key, value);
  }

  /**
   * Writes `key` only if a lease is alive, without waiting for one: for frequent, disposable
   * writes (load snapshots) that must never queue up behind an outage. Remembered either way.
   */
  async putIfAlive(key: string, value: string): Promise<void> {
    this.#wanted.set(key, value);
    const lease = this.#lease;
    if (lease === undefined) return;
    await this.#write(lease, key, value, `write ${key}`, this.#shortWhenUnanswered());
  }

  /** Writes `key` on `lease`; settled once etcd has it, and if no newer write of it began meanwhile. */
  async #write(lease: Lease, key: string, value: string, what = `write ${key}`, timeoutMs = this.#requestTimeoutMs): Promise<void> {
    this.#settled.delete(key);
    await this.#withDeadline(lease.put(key).value(value).exec(), what, timeoutMs);
    if (this.#lease === lease && this.#wanted.get(key) === value) this.#settled.add(key);
  }

  /** Deletes `key` and forgets it. */
  async delete(key: string): Promise<void> {
    this.#wanted.delete(key);
    this.#settled.delete(key);
    // A check under way may be writing the key back: let it finish first, or its write could
    // land after the delete and outlive it until the lease ends.
    await this.#auditing?.catch(() => {});
    await this.#withDeadline(this.#client.delete().key(key).exec(), `delete ${key}`, this.#shortWhenUnanswered());
  }

  /** Revokes the lease, which deletes every key still on it, and stops re-registering. */
  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#recoverTimer);
    clearInterval(this.#renewalCheck);
    const lease = this.#lease;
    this.#lease = undefined;
    await this.#auditing?.catch(() => {});
    if (lease !== undefined) await this.#withDeadline(lease.revoke(), 'revoke the lease', this.#shortWhenUnanswered()).catch(() => lease.release());
  }

  /**
   * The deadline of a load write, a delete or the revoke: a third of `requestTimeoutMs` (at
   * least 250 ms) while etcd is not answering, else all of it. A provider stopping while etcd
   * hangs publishes its drain, deletes its records and revokes its lease, one after the other;
   * at the whole budget each, it took three of them (9 s by default) to exit, for writes that
   * could not land — and the lease ends by itself within a TTL.
   */
  #shortWhenUnanswered(): number {
    return this.#unanswered ? Math.max(250, Math.floor(this.#requestTimeoutMs / 3)) : this.#requestTimeoutMs;
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
    lease.on('lost', (error: unknown) => this.#onLost(lease, error));
    lease.on('keepaliveSucceeded', () => {
      if (this.#lease === lease) this.#renewedAt = monotonicNow();
      this.#audit(lease);
    });
    let id: string;
    try {
      id = await this.#withDeadline(lease.grant(), 'grant a lease', timeoutMs);
    } catch (error) {
      lease.release();
      throw error;
    }
    this.generations++;
    this.#lease = lease;
    this.#leaseId = id;
    this.#renewedAt = monotonicNow();
    this.#settled.clear();
    this.#renewalCheck ??= setInterval(() => this.#checkRenewal(), Math.max(100, (this.#ttlSeconds * 1000) / 12));
    this.#renewalCheck.unref();
    return lease;
  }

  /**
   * Renewals stopped coming for half a TTL: the keep-alive stream may sit on a hung member.
   * Sends a single keep-alive, which goes to a member picked at random and is cut off at a
   * quarter TTL; a lapsed lease answers "not found" and etcd3 reports the lease lost.
   */
  #checkRenewal(): void {
    const lease = this.#lease;
    const ttlMs = this.#ttlSeconds * 1000;
    if (this.#closed || lease === undefined || monotonicNow() - this.#renewedAt < ttlMs / 2 || this.#rescues >= MAX_RESCUES) return;
    this.#rescues++;
    lease
      .keepaliveOnce({ deadline: Date.now() + Math.max(250, ttlMs / 4) })
      .then(() => {
        if (this.#lease === lease) this.#renewedAt = monotonicNow();
      })
      .catch(() => {})
      .finally(() => this.#rescues--);
  }

  /**
   * Writes back, on `lease`, every wanted key that etcd says the lease no longer holds. At most
   * one check at a time and one per {@link #auditEveryMs}; failures wait for the next keep-alive.
   */
  #audit(lease: Lease): void {
    const id = this.#leaseId;
    const now = monotonicNow();
    if (this.#closed || this.#lease !== lease || id === undefined || this.#auditing !== undefined || now - this.#lastAudit < this.#auditEveryMs()) return;
    this.#lastAudit = now;
    this.#auditing = this.#restoreMissing(lease, id)
      .catch(() => {})
      .finally(() => {
        this.#auditing = undefined;
      });
  }

  async #restoreMissing(lease: Lease, id: string): Promise<void> {
    // Keys settled before the question is asked: any of them etcd does not list was removed.
    const settled = [...this.#settled];
    const held = await this.#withDeadline(this.#client.leaseClient.leaseTimeToLive({ ID: id, keys: true }), 'list the keys of its lease');
    // TTL -1: the lease is gone; the 'lost' event re-registers everything.
    if (held.TTL === '-1' || this.#lease !== lease) return;
    const onLease = new Set(held.keys.map((key) => key.toString('utf8')));
    const missing = [...settled].filter((key) => !onLease.has(key));
    await Promise.all(
      missing.map(async (key) => {
        // Read at the moment of writing: a key deleted, changed or being written meanwhile is left alone.
        const value = this.#wanted.get(key);
        if (value === undefined || !this.#settled.has(key) || this.#lease !== lease || this.#closed) return;
        await this.#write(lease, key, value, `write ${key} back`);
        this.restored++;
        this.#onRestored(key);
      }),
    );
  }

  /**
   * The keep-alive's own pace (TTL/3), and never more than once a second; less 50 ms, so the
   * jitter of the keep-alive timer does not skip every other one.
   */
  #auditEveryMs(): number {
    return Math.max(1000, (this.#ttlSeconds * 1000) / 3) - 50;
  }

  #onLost(lease: Lease, error: unknown): void {
    if (this.#closed || this.#lease !== lease) return;
    this.#lease = undefined;
    if (this.#lostAt === undefined) {
      this.#lostAt = monotonicNow();
      this.#report(
        `etcd registry ${this.#display}: this provider's lease was lost (${lossReason(error, this.#ttlSeconds)}); its ${this.#wanted.size} keys are gone from etcd and consumers will not see it until it registers again, which it tries at most 2 s apart`,
      );
    }
    this.#recover(0);
  }

  /**
   * Grants a new lease and writes every wanted key again, retrying until etcd answers. Delays
   * are drawn at random (the first up to half the pace, later ones from half to all of their
   * backoff): a fleet that lost its leases together — the cluster came back empty, or was down
   * past the TTL — must not come back in the same millisecond.
   */
  #recover(attempt: number): void {
    if (this.#closed) return;
    const pace = Math.max(250, Math.min(this.#requestTimeoutMs, (this.#ttlSeconds * 1000) / 3));
    const delay = recoveryDelayMs(attempt, pace);
    this.#recoverTimer = setTimeout(() => {
      this.#currentLease(pace)
        .then((lease) => Promise.all([...this.#wanted].map(([key, value]) => this.#write(lease, key, value, `write ${key}`, pace))))
        .then(() => {
          if (this.#lostAt === undefined || this.#closed) return;
          this.#report(
            `etcd registry ${this.#display}: registered again on a new lease (${this.#wanted.size} keys), ${monotonicNow() - this.#lostAt} ms after the lease was lost`,
          );
          this.#lostAt = undefined;
        })
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
      const result = await Promise.race([
        operation,
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms`)), timeoutMs);
        }),
      ]);
      this.#unanswered = false;
      return result;
    } catch (error) {
      if (memberUnusable(error) || /^timed out after/.test((error as Error)?.message ?? '')) this.#unanswered = true;
      throw new RpcError(RpcCode.UNAVAILABLE, `etcd registry ${this.#display}: cannot ${what}: ${etcdReason(error, timeoutMs)}`, { cause: error });
    } finally {
      clearTimeout(timer);
    }
  }
}

/** Single keep-alives in flight at most while renewals have stopped coming. */
const MAX_RESCUES = 3;

/** Why etcd3 gave a lease up, in an operator's words (its own message quotes a gRPC status). */
function lossReason(error: unknown, ttlSeconds: number): string {
  const message = error instanceof Error ? error.message : String(error);
  // etcd3 gives up on its own after two TTLs without an answer, with the same error class.
  if (/lost connection/i.test(message)) return `etcd was out of reach for longer than twice its ${ttlSeconds} s TTL`;
  if (error instanceof EtcdLeaseInvalidError) return 'etcd no longer knows it: it expired, was revoked, or the cluster was rebuilt';
  return message;
}

/**
 * How long re-registration attempt `attempt` (0 first) waits, drawn at random with `random`
 * (0 to 1): the first up to half of `paceMs` (at most 250 ms), later ones from half to all of
 * their backoff (250 ms doubling, at most `paceMs` and 2 s). A fleet that lost its leases
 * together then comes back spread over time, not in one burst.
 */
export function recoveryDelayMs(attempt: number, paceMs: number, random: () => number = Math.random): number {
  if (attempt === 0) return (random() * Math.min(500, paceMs)) / 2;
  return Math.min(2000, paceMs, 250 * 2 ** attempt) * (0.5 + random() / 2);
}
