/** What the step planner needs of a running sequence. */
export interface StepMember {
  /** Whether it is still computing its prompt (or recomputing after a preemption). */
  readonly prefilling: boolean;
  /** Prompt tokens it has yet to compute, when prefilling. */
  readonly prefillLeft: number;
}

/** One engine step as it ran: what it computed and how long it took. */
export interface EngineStep {
  /** When the step started, ms of the engine's clock. */
  readonly startedAt: number;
  readonly ms: number;
  /** Prompt tokens computed (chunks of prefills, recomputation after preemption). */
  readonly prefillTokens: number;
  /** Sequences that decoded one token. */
  readonly decodeTokens: number;
  /** Sequences that took part (a prefill chunk or a decode). */
  readonly sequences: number;
}

/** The timing parameters of a step (see EngineConfig in engine.ts). */
export interface StepTiming {
  readonly prefillTokensPerSecond: number;
  readonly prefillOverheadMs: number;
  readonly decodeBaseMs: number;
  readonly decodePerRunningMs: number;
}

/**
 * Gives one step's token budget to `ordered` (the running sequences, first served first): a
 * decoding sequence takes 1 token, a prefilling one the rest of its prompt or what is left of
 * the budget, whichever is smaller (a chunk; the next one follows in a later step). Once the
 * budget is spent the rest sit this step out, as in vLLM's scheduler. Returns the tokens of
 * each member scheduled; a prefilling member whose prompt is fully cached is scheduled with 0.
 * The total never exceeds `budget`.
 */
export function planStep<T extends StepMember>(ordered: Iterable<T>, budget: number): Map<T, number> {
  const plan = new Map<T, number>();
  let left = budget;
  for (const member of ordered) {
    if (left <= 0) break;
    const tokens = member.prefilling ? Math.min(member.prefillLeft, left) : 1;
    plan.set(member, tokens);
    left -= tokens;
  }
  return plan;
}

/**
 * How long a step of `plan` lasts, from the tokens it computes: when it carries prompt tokens,
 * the prefill overhead plus those tokens at the prefill rate; always the decode base plus a
 * per-sequence cost for every sequence in the batch (each reads its KV).
 */
export function stepTime<T extends StepMember>(timing: StepTiming, plan: ReadonlyMap<T, number>): Omit<EngineStep, 'startedAt'> {
  let prefillTokens = 0;
  let prefills = 0;
  for (const [member, tokens] of plan) {
    if (!member.prefilling) continue;
    prefills++;
    prefillTokens += tokens;
  }
  const prefillMs = prefills === 0 ? 0 : timing.prefillOverheadMs + (prefillTokens / timing.prefillTokensPerSecond) * 1000;
  const ms = prefillMs + timing.decodeBaseMs + timing.decodePerRunningMs * plan.size;
  return { ms, prefillTokens, decodeTokens: plan.size - prefills, sequences: plan.size };
}
