import type { ProviderTotals, ShuttleMetrics } from './metrics.js';
import type { ProviderStatus, WatchedClient } from './reports.js';

/** One provider as the dashboard lists it: its live status (the last seen, when down) and counts. */
export interface FleetEntry {
  readonly status: ProviderStatus;
  /** `up`, `draining`, or `down` (left or died; kept for the retention period). */
  readonly state: 'up' | 'draining' | 'down';
  /** Epoch ms since when it has been in `state`. */
  readonly since: number;
  /** Why it is down. */
  readonly why?: string;
  readonly counts: ProviderTotals;
}

/** Something that happened to a provider. */
export interface FleetEvent {
  /** Epoch ms. */
  readonly at: number;
  /** The provider's name (metadata `name`) or address. */
  readonly provider: string;
  readonly kind: 'joined' | 'left' | 'died' | 'drained' | 'draining' | 'breaker opened' | 'breaker half-open' | 'breaker closed' | 'ejected' | 'readmitted';
  readonly detail: string;
}

/** What `/fleet` serves. */
export interface FleetSnapshot {
  readonly providers: readonly FleetEntry[];
  /** Newest first. */
  readonly events: readonly FleetEvent[];
  readonly retentionMs: number;
}

const NO_COUNTS: ProviderTotals = { attempts: 0, failed: 0, shed: 0, broken: 0, retries: 0 };

/**
 * The providers the watched clients have seen, over time: a client lists only who is in the
 * registry now, so a provider that died or left would vanish with its failures. Sampled
 * (every `sample()`), this keeps such a provider as `down` — when, and why, judged from its
 * last seen state — for `retentionMs`, and records the events between samples: joined,
 * left, died, draining, breaker opened / half-open / closed, ejected, readmitted. At most
 * `maxEvents` events are kept.
 */
/** Providers that left the registry kept on the fleet view at most (the newest). */
const MAX_DOWN = 256;

export class FleetHistory {
  readonly #clients: readonly WatchedClient[];
  readonly #metrics: ShuttleMetrics;
  readonly #retentionMs: number;
  readonly #maxEvents: number;
  readonly #seen = new Map<string, { status: ProviderStatus; since: number }>();
  readonly #down = new Map<string, { status: ProviderStatus; since: number; why: string }>();
  #events: FleetEvent[] = [];

  constructor(clients: readonly WatchedClient[], metrics: ShuttleMetrics, retentionMs: number, maxEvents = 200) {
    this.#clients = clients;
    this.#metrics = metrics;
    this.#retentionMs = retentionMs;
    this.#maxEvents = maxEvents;
  }

  /** Compares what the clients list now with the last sample, recording what changed. */
  sample(now = Date.now()): void {
    const current = new Map<string, ProviderStatus>();
    for (const client of this.#clients) {
      for (const status of client.providers()) {
        // One provider listed twice — found in the registry and also called by its URL — is
        // shown with the listing that says more about it (the registry's name and metadata).
        const key = keyOf(status);
        const other = current.get(key);
        if (other === undefined || Object.keys(status.metadata).length > Object.keys(other.metadata).length) current.set(key, status);
      }
    }
    for (const [key, status] of current) {
      const before = this.#seen.get(key);
      if (before === undefined) {
        this.#down.delete(key);
        this.#seen.set(key, { status, since: now });
        this.#event(now, status, 'joined', `${status.address} ${status.protocol}`);
        continue;
      }
      this.#changes(now, before.status, status);
      const draining = (status.load?.draining === true) !== (before.status.load?.draining === true);
      this.#seen.set(key, { status, since: draining ? now : before.since });
    }
    for (const [key, { status }] of this.#seen) {
      if (current.has(key)) continue;
      this.#seen.delete(key);
      const [kind, why] = goneWhy(status);
      this.#down.set(key, { status, since: now, why });
      this.#event(now, status, kind, why);
    }
    for (const [key, entry] of this.#down) if (now - entry.since > this.#retentionMs) this.#down.delete(key);
    // Bounded by count too: a registry churning through new addresses (hundreds a second) would
    // otherwise keep every one of them, metadata and all, for the whole retention time. The
    // oldest go first (a Map keeps insertion order).
    for (const key of this.#down.keys()) {
      if (this.#down.size <= MAX_DOWN) break;
      this.#down.delete(key);
    }
  }

  /** The providers (up, draining, then down) with their counts, and the events. */
  async snapshot(now = Date.now()): Promise<FleetSnapshot> {
    this.sample(now);
    const totals = await this.#metrics.providerTotals();
    const providers: FleetEntry[] = [];
    for (const { status, since } of this.#seen.values()) {
      providers.push({ status, state: status.load?.draining === true ? 'draining' : 'up', since, counts: totals.get(status.address) ?? NO_COUNTS });
    }
    for (const { status, since, why } of this.#down.values())
      providers.push({ status, state: 'down', since, why, counts: totals.get(status.address) ?? NO_COUNTS });
    return { providers, events: [...this.#events].reverse(), retentionMs: this.#retentionMs };
  }

  #changes(now: number, before: ProviderStatus, after: ProviderStatus): void {
    if (before.breaker !== after.breaker)
      this.#event(now, after, `breaker ${after.breaker === 'open' ? 'opened' : after.breaker === 'closed' ? 'closed' : 'half-open'}`, `was ${before.breaker}`);
    if (before.ejected !== after.ejected) {
      this.#event(
        now,
        after,
        after.ejected ? 'ejected' : 'readmitted',
        after.ejected ? `as an outlier until ${new Date(after.ejectedUntil ?? now).toISOString()}` : 'back in the rotation',
      );
    }
    if (before.load?.draining !== true && after.load?.draining === true) this.#event(now, after, 'draining', 'finishing its calls, taking no new ones');
  }

  #event(at: number, status: ProviderStatus, kind: FleetEvent['kind'], detail: string): void {
    this.#events.push({ at, provider: nameOf(status), kind, detail });
    if (this.#events.length > this.#maxEvents) this.#events = this.#events.slice(-this.#maxEvents);
  }
}

function keyOf(status: ProviderStatus): string {
  return `${status.service}\u0000${status.version}\u0000${status.group}\u0000${status.address}`;
}

function nameOf(status: ProviderStatus): string {
  return typeof status.metadata['name'] === 'string' ? status.metadata['name'] : status.address;
}

/** Why a provider is gone, from the last state it was seen in. */
function goneWhy(last: ProviderStatus): [FleetEvent['kind'], string] {
  if (last.load?.draining === true) return ['drained', 'drained and left the registry'];
  // A connection that was not up when it left (reconnecting, failed) means it went away under us.
  if (
    last.breaker !== 'closed' ||
    last.ejected ||
    last.connection === 'transient-failure' ||
    last.connection === 'connecting' ||
    last.connection === 'shutdown'
  ) {
    return [
      'died',
      `died: its connection failed (breaker ${last.breaker}${last.ejected ? ', ejected' : ''}, connection ${last.connection}) and it left the registry`,
    ];
  }
  // Seen last with calls of this client in flight and not draining: it went away mid-call,
  // even when the registry said so before the broken connection did (the two race).
  if (last.inFlight > 0) return ['died', `died: it left the registry with ${last.inFlight} calls of this client in flight`];
  return ['left', 'left the registry'];
}
