import type { Etcd3 } from 'etcd3';
import { monotonicNow } from '../../common/clock.js';

/** The parts of etcd3's (internal) WatchManager that the liveness check uses. */
interface WatchManagerInternals {
  state: number;
  stream?: { write(request: unknown): unknown };
  handleResponse(response: unknown): void;
  handleCreatedResponse(response: unknown): void;
  handleError(error: Error): void;
}

/** The parts of etcd3's (internal) ConnectionPool used to choose the member of a new watch stream. */
interface PoolInternals {
  hosts: unknown[];
  withConnection(service: string, fn: (connection: { resource: unknown }) => unknown, hosts?: Iterator<unknown>): Promise<unknown>;
}

/** etcd3's WatchManager state while its stream is open. */
const CONNECTED = 2;

/**
 * Makes sure the etcd3 client's watch stream is answered, and moves it to another member when
 * it is not.
 *
 * etcd3 keeps all of a client's watches on one gRPC stream to one member picked at random. If
 * that member hangs (stopped, stalled on its disk: its sockets open, nothing answered), the
 * stream stays open and silent: no error, no event, for as long as the member hangs — the
 * consumer no longer sees providers come and go, and a watch created meanwhile (a first
 * subscribe) never starts. gRPC's own keepalive pings would close the connection, but etcd3
 * would as likely reconnect to the same member, and a connection to a hung process never
 * completes its handshake (grpc-js has no timeout for that).
 *
 * So every `everyMs` this sends etcd's progress request on the stream (etcd 3.4+ answers it at
 * once with the member's revision, on no watch: `watch_id` -1); the answer, or any other
 * message, shows the stream alive. A stream that has heard nothing for `silentMs` since a
 * request is broken off as etcd3 breaks off a failed one, and etcd3 opens a new one, resuming
 * every watch from the last revision it saw — on another member: the silent one is avoided for
 * {@link AVOID_MS} (unless every member is). Progress answers are consumed here; etcd3 cannot
 * route them.
 *
 * Each move is reported through `onMoved`, naming the silent member, so an operator sees why a
 * consumer's view of the fleet paused.
 *
 * This reaches into etcd3 internals (`watchManager`, its `state`, `stream` and `handleError`;
 * `pool`, its `hosts` and `withConnection`);
 * if a future etcd3 changes them, nothing is installed (`installed` is false).
 */
export function watchLiveness(
  client: Etcd3,
  everyMs: number,
  silentMs: number,
  onMoved: (message: string) => void = () => {},
): { installed: boolean; close(): void } {
  const { watchManager: manager, pool } = client as unknown as { watchManager?: Partial<WatchManagerInternals>; pool?: Partial<PoolInternals> };
  if (
    manager === undefined ||
    pool === undefined ||
    !Array.isArray(pool.hosts) ||
    typeof pool.withConnection !== 'function' ||
    typeof manager.handleResponse !== 'function' ||
    typeof manager.handleCreatedResponse !== 'function' ||
    typeof manager.handleError !== 'function' ||
    typeof manager.state !== 'number'
  ) {
    return { installed: false, close: () => {} };
  }
  const internals = manager as WatchManagerInternals;
  const members = pool as PoolInternals;
  /** Member -> until when a new watch stream avoids it. */
  const avoid = new Map<unknown, number>();
  /** The member the current watch stream went to. */
  let streamMember: unknown;
  const withConnection = members.withConnection.bind(members);
  members.withConnection = (service, fn, hosts) => {
    if (service !== 'Watch' || hosts !== undefined) return withConnection(service, fn, hosts);
    return withConnection(
      service,
      (connection) => {
        streamMember = connection.resource;
        return fn(connection);
      },
      preferring(members.hosts, avoid),
    );
  };
  let heardAt = monotonicNow();
  /** When the oldest unanswered progress request was sent (undefined: none pending). */
  let askedAt: number | undefined;
  let askedOn: unknown;
  const handleResponse = internals.handleResponse.bind(internals);
  const handleCreatedResponse = internals.handleCreatedResponse.bind(internals);
  internals.handleResponse = (response: unknown): void => {
    heardAt = monotonicNow();
    askedAt = undefined;
    if (isProgress(response)) return;
    handleResponse(response);
  };
  internals.handleCreatedResponse = (response: unknown): void => {
    heardAt = monotonicNow();
    askedAt = undefined;
    handleCreatedResponse(response);
  };
  const timer = setInterval(() => {
    const stream = internals.stream;
    if (internals.state !== CONNECTED || stream === undefined) {
      askedAt = undefined;
      return;
    }
    const now = monotonicNow();
    if (askedAt !== undefined && askedOn === stream && heardAt < askedAt && now - askedAt >= silentMs) {
      askedAt = undefined;
      // A member still avoided went silent again (the only member, or every member, hung; the
      // stream came back to it): moved again, not reported again — an hour of outage would
      // otherwise say the same line every few seconds. It is reported once more when it goes
      // silent after a minute without.
      const again = (avoid.get(streamMember) ?? Number.NEGATIVE_INFINITY) > now;
      if (streamMember !== undefined) avoid.set(streamMember, now + AVOID_MS);
      const reason = `the etcd watch stream went silent for ${silentMs} ms: its member is hung or cut off`;
      internals.handleError(new Error(reason));
      if (!again) onMoved(`${reason} (${memberName(streamMember)}); watches resume on another member, which it avoids for ${AVOID_MS / 1000} s`);
      return;
    }
    if (askedAt === undefined || askedOn !== stream) {
      askedAt = now;
      askedOn = stream;
    }
    try {
      stream.write({ progress_request: {} });
    } catch {
      // A stream ending as it is written to: etcd3 is already reconnecting.
    }
  }, everyMs);
  timer.unref();
  return { installed: true, close: () => clearInterval(timer) };
}

/** How long a member whose watch stream went silent is avoided by new watch streams. */
const AVOID_MS = 60_000;

/** A member's address as etcd3 keeps it (`Host.host`), or a placeholder if its shape changed. */
function memberName(member: unknown): string {
  const host = (member as { host?: unknown } | undefined)?.host;
  return typeof host === 'string' ? `member ${host}` : 'its member';
}

/** Members in random order, those not avoided first, endlessly (as etcd3's own shuffle). */
function* preferring(hosts: readonly unknown[], avoid: ReadonlyMap<unknown, number>): Iterator<unknown> {
  for (;;) {
    const now = monotonicNow();
    const shuffled = [...hosts];
    for (let index = shuffled.length - 1; index > 0; index--) {
      const other = Math.floor(Math.random() * (index + 1));
      [shuffled[index], shuffled[other]] = [shuffled[other], shuffled[index]];
    }
    const usable = shuffled.filter((host) => (avoid.get(host) ?? 0) <= now);
    yield* usable;
    yield* shuffled.filter((host) => !usable.includes(host));
  }
}

/** Whether a watch response is etcd's answer to a progress request (on no watch, no events). */
function isProgress(response: unknown): boolean {
  const { watch_id: id, events, created, canceled } = response as { watch_id?: unknown; events?: unknown[]; created?: boolean; canceled?: boolean };
  return String(id) === '-1' && !created && !canceled && (events === undefined || events.length === 0);
}
