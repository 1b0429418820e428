import type { ByteBudget } from '../byte-budget.js';
import type { FrameWriter } from './frame-writer.js';
import { Hold, type ReadGate } from './read-gate.js';

/**
 * A connection's share that never waits for the server-wide budgets: unsent bytes below it are
 * not charged (a socket under its 16 KiB high-water mark signals no 'drain' to give them back),
 * and one request this small always runs on a connection that runs nothing else — so no peer's
 * flood can stop every other connection.
 */
export const FAIR_SHARE_BYTES = 64 * 1024;

/**
 * The provider's answers waiting unsent on one connection, against the connection's budget
 * (`maxUnsentBytes`) and the server's (`maxTotalUnsentBytes`). A peer that leaves its answers
 * unread stops being read until they drain: past its own budget, or past its fair share while
 * the server's total is spent. The bytes charged to the server are given back at the drain.
 */
export class OutboundBudget {
  readonly #writer: FrameWriter;
  readonly #gate: ReadGate;
  readonly #maxUnsentBytes: number;
  readonly #server: ByteBudget | undefined;
  readonly #resume: () => void;
  #charged = 0;
  #watchingDrain = false;

  /** @param resume lifts the OUTBOUND hold once the answers have drained */
  constructor(writer: FrameWriter, gate: ReadGate, maxUnsentBytes: number, server: ByteBudget | undefined, resume: () => void) {
    this.#writer = writer;
    this.#gate = gate;
    this.#maxUnsentBytes = maxUnsentBytes;
    this.#server = server;
    this.#resume = resume;
  }

  /** Called after every write. Cheap when the connection keeps up: one getter. */
  check(): void {
    const unsent = this.#writer.unsentBytes;
    if (unsent < FAIR_SHARE_BYTES && this.#charged === 0) return;
    this.#charge(unsent);
    if (this.#gate.holds(Hold.OUTBOUND) || (this.#watchingDrain && unsent < FAIR_SHARE_BYTES)) return;
    const server = this.#server;
    const over = unsent > this.#maxUnsentBytes || (server?.exhausted === true && unsent >= FAIR_SHARE_BYTES);
    if (over) this.#gate.hold(Hold.OUTBOUND);
    if (this.#watchingDrain || unsent < FAIR_SHARE_BYTES) return;
    this.#watchingDrain = true;
    void this.#writer.drained().then(() => {
      this.#watchingDrain = false;
      this.#charge(0);
      if (this.#gate.holds(Hold.OUTBOUND)) this.#resume();
    });
  }

  /** The connection closed: give back what is charged. */
  close(): void {
    this.#charge(0);
  }

  #charge(bytes: number): void {
    const charge = bytes < FAIR_SHARE_BYTES ? 0 : bytes;
    this.#server?.charge(charge - this.#charged);
    this.#charged = charge;
  }
}
