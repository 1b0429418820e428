import { AdmissionQueue } from '../../../src/admission/queue.js';
import type { AdmissionOptions, AdmissionRequest, RefusalReason, Ticket } from '../../../src/admission/admission.js';
import type { RpcError } from '../../../src/errors/errors.js';
import { ManualClock } from './manual-clock.js';

/** Lets promise reactions run. */
export const flush = async (): Promise<void> => {
  for (let i = 0; i < 5; i++) await Promise.resolve();
};

export interface Entry {
  ticket?: Ticket;
  error?: RpcError;
}

/** A queue over `slots` slots on a manual clock, with helpers that record what happens. */
export function setup(slots: number, options: Partial<AdmissionOptions> = {}) {
  const clock = new ManualClock();
  const refusals: RefusalReason[] = [];
  const queue = new AdmissionQueue({ capacity: () => slots, clock, observer: { refused: (_t, _p, reason) => refusals.push(reason) }, ...options });
  const order: string[] = [];
  const running: Array<{ label: string; ticket: Ticket }> = [];
  /** Asks for admission (tenant `a`, 10 tokens, 60 s deadline unless given). */
  const ask = (label: string, request: Partial<AdmissionRequest> = {}): Entry => {
    const entry: Entry = {};
    queue.admit({ tenant: 'a', tokens: 10, deadline: clock.now() + 60_000, ...request }).then(
      (ticket) => {
        order.push(label);
        running.push({ label, ticket });
        entry.ticket = ticket;
      },
      (error: RpcError) => (entry.error = error),
    );
    return entry;
  };
  /** Ends the oldest running call (with its actual tokens, if given). */
  const finish = async (actualTokens?: number): Promise<void> => {
    running.shift()!.ticket.release(actualTokens);
    await flush();
  };
  return { clock, queue, order, running, ask, finish, refusals };
}
