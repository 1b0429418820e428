import { RpcCode, RpcError } from '../../errors/errors.js';
import { monotonicNow } from '../../common/clock.js';

/**
 * Frames that cause no work a connection may receive within {@link NOOP_WINDOW_MS}: heartbeats
 * and their answers, GOAWAYs, cancels and window updates that name no running call, and (on a
 * consumer) answers for calls nobody waits for and LOAD frames dropped unread. Each costs the
 * receiver its decoding and a lookup and the sender 20 bytes, so without a bound a peer that
 * sends them by the hundred thousand a second kept a provider 70 % busy with 90–185 ms
 * event-loop stalls, and a consumer a full core. The project's own peers send a few a second: a
 * heartbeat per `heartbeatIntervalMs` (10 s by default, at least 10 ms), an answer to a heartbeat
 * at most every 100 ms, one GOAWAY per connection; the frames a peer sends because of a call
 * (a cancel, a late window update, a late answer) are allowed on top, per call (see
 * {@link NoopFrameBudget.allow}). A thousand a second is ten times the most a consumer with the
 * shortest heartbeat interval sends, and costs the receiver well under 1 % of a core.
 */
export const MAX_NOOP_FRAMES = 1000;

/** The window {@link MAX_NOOP_FRAMES} is counted over. */
export const NOOP_WINDOW_MS = 1000;

/**
 * Counts one connection's frames that cause no work (HTTP/2 servers do the same for PING,
 * SETTINGS and RST_STREAM floods, answering ENHANCE_YOUR_CALM). The count runs from the start of
 * a window and the clock is read only when it reaches the limit: a window that is over by then
 * starts again, one still running is a flood. So the check per frame is an increment and a
 * comparison, and a peer passes only with at most MAX_NOOP_FRAMES in every window it fills.
 */
export class NoopFrameBudget {
  #count = 0;
  #since = monotonicNow();

  /** Counts a frame that caused no work; true when the peer is past the budget (a flood). */
  spend(): boolean {
    return ++this.#count >= MAX_NOOP_FRAMES && this.#overBudget();
  }

  /**
   * Allows `frames` more, for frames an honest peer sends because of work: a consumer may cancel
   * each call it makes and grant a stream's credit after its end, a provider's answers may
   * cross a consumer's cancel. What is allowed this way is at most proportional to the calls.
   */
  allow(frames: number): void {
    this.#count -= frames;
  }

  #overBudget(): boolean {
    const now = monotonicNow();
    if (now - this.#since < NOOP_WINDOW_MS) return true;
    this.#count = 0;
    this.#since = now;
    return false;
  }
}

/** The error a connection closes with when its peer is past its {@link NoopFrameBudget}. */
export function noopFlood(peer: 'consumer' | 'provider'): RpcError {
  return new RpcError(
    RpcCode.RESOURCE_EXHAUSTED,
    `protocol error: the ${peer} sent more than ${MAX_NOOP_FRAMES} frames that do no work (heartbeats, GOAWAYs, cancels, window updates or answers for no running call${peer === 'provider' ? ', LOAD frames dropped unread' : ''}) within ${NOOP_WINDOW_MS} ms; the connection is closed`,
    { details: { protocol: true, flood: true } },
  );
}
