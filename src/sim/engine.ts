import { invalidOption } from '../common/validate.js';
import { RpcCode, RpcError } from '../errors/errors.js';
import { isLandmark } from '../loadbalance/cache-summary.js';
import { MAX_CACHE_SUMMARY } from '../registry/instance.js';
import type { Clock } from './clock.js';
import { planStep, stepTime, type EngineStep } from './step.js';
import { before, WaitingList } from './waiting-list.js';

/**
 * Parameters of a simulated GPU inference engine. The defaults describe one mid-size GPU
 * serving an 8B model with vLLM-style continuous batching:
 * - `decodeBaseMs` 6 and `decodePerRunningMs` 0.35: a decode step of ~6 ms alone, growing
 *   with the batch (memory-bound decoding: every running sequence adds its KV reads);
 * - `prefillTokensPerSecond` 20,000: prompt processing is compute-bound and ~100x faster per
 *   token than decoding;
 * - `prefillOverheadMs` 30: scheduling, kernel launches and sampling around a prefill, which is
 *   what makes a short prompt on an idle worker take 6–10 decode steps to its first token, as
 *   measured TTFTs of 40–60 ms for short prompts on idle vLLM servers suggest;
 * - `requestOverheadMs` 0: the part of that fixed cost spent before the request reaches the
 *   engine's queue (HTTP, tokenising, the hand-off to the engine process, which in vLLM's V1
 *   engine runs beside the GPU loop rather than in its steps); moving some of
 *   `prefillOverheadMs` here keeps an idle worker's TTFT and takes that time out of the steps;
 * - `kvCapacityTokens` 400,000 in blocks of `blockTokens` 16 (vLLM's default block size);
 * - `maxBatchedTokens` 2048: the tokens one step may compute (prompt chunks plus one per
 *   decoding sequence), vLLM's `max_num_batched_tokens` as its OpenAI server sets it on GPUs
 *   below 70 GiB (8192 on H100-class ones); a longer prefill is chunked across steps (vLLM's
 *   chunked prefill, on by default in its V1 engine). `Infinity` turns the budget off: every
 *   admitted prompt is computed whole in one step;
 * - `scheduling` `fcfs`, vLLM's default; `priority` is vLLM's `--scheduling-policy priority`
 *   and SGLang's `--enable-priority-scheduling` (see {@link SimEngine}).
 */
export interface EngineConfig {
  readonly slots: number;
  readonly kvCapacityTokens: number;
  readonly blockTokens: number;
  readonly prefillTokensPerSecond: number;
  readonly prefillOverheadMs: number;
  readonly decodeBaseMs: number;
  readonly decodePerRunningMs: number;
  /** Time from a request's arrival to its joining the waiting queue (front end: parsing, tokenising, hand-off); no GPU time. */
  readonly requestOverheadMs: number;
  /** Tokens one step computes at most (prompt chunks + decodes); `Infinity` for no budget, no chunking. */
  readonly maxBatchedTokens: number;
  /** `fcfs`: admit in arrival order; `priority`: by request priority, preempting lower priorities. */
  readonly scheduling: SchedulingPolicy;
}

/** How an engine orders its waiting requests (see {@link SimEngine}). */
export type SchedulingPolicy = 'fcfs' | 'priority';

/** The simulated engine's defaults (see {@link EngineConfig}). */
export const DEFAULT_ENGINE: EngineConfig = {
  slots: 8,
  kvCapacityTokens: 400_000,
  blockTokens: 16,
  prefillTokensPerSecond: 20_000,
  prefillOverheadMs: 30,
  decodeBaseMs: 6,
  decodePerRunningMs: 0.35,
  requestOverheadMs: 0,
  maxBatchedTokens: 2048,
  scheduling: 'fcfs',
};

/** One generation request: its prompt as token count and full-block hashes, and how much to generate. */
export interface SimRequest {
  /** Prompt length in tokens. */
  readonly promptTokens: number;
  /** Chained hashes of the prompt's full blocks (equal hashes = equal prefixes). */
  readonly promptBlocks: readonly number[];
  readonly maxTokens: number;
  /**
   * Higher runs first under `priority` scheduling (0 when absent; any finite number, the way
   * shuttle numbers priorities: 0 low … 9). Ignored under `fcfs`.
   */
  readonly priority?: number;
  readonly signal?: AbortSignal;
}

/** What a finished generation reports (a generator's return value). */
export interface SimUsage {
  readonly promptTokens: number;
  readonly cachedTokens: number;
  readonly outputTokens: number;
  /** Queueing + prefill time to the first token, ms of the engine's clock. */
  readonly ttftMs: number;
  /** Times the request was preempted by higher-priority work (and recomputed). */
  readonly preemptions: number;
}

/** The engine's live load, the figures a worker publishes. */
export interface EngineLoad {
  readonly running: number;
  readonly waiting: number;
  readonly waitingUncachedTokens: number;
  readonly kvUsage: number;
  readonly cacheHitRate: number;
  readonly tokensPerSecond: number;
  /** The prefix cache's compact summary (cache-summary.ts), most recently used first. */
  readonly cachedPrefixes: readonly number[];
}

interface Sequence {
  readonly request: SimRequest;
  readonly arrivedAt: number;
  /** Arrival order, the tie-break within a priority. */
  readonly order: number;
  /** The priority it is scheduled by: the request's under `priority`, 0 under `fcfs`. */
  readonly priority: number;
  readonly blocks: number;
  cachedTokens: number;
  /** Whether it is computing its prompt (or recomputing its KV after a preemption). */
  prefilling: boolean;
  /** Tokens of that computation still to do, in chunks of what the step budget leaves. */
  prefillLeft: number;
  produced: number;
  preemptions: number;
  firstTokenAt: number | undefined;
  readonly queue: number[];
  wake: (() => void) | undefined;
  done: boolean;
}

/**
 * A step-based simulation of continuous batching with chunked prefill. Before each step, waiting
 * requests are admitted in order while a batch slot and KV blocks are free and the step's token
 * budget is not already spoken for by the running sequences served before them; an admitted
 * request has to compute its prompt tokens not in the prefix cache. The step then gives its
 * budget (`maxBatchedTokens`) to the running sequences in order: one token to each decoding
 * sequence, and to each prefilling one the rest of its prompt or what the budget leaves (a
 * chunk; the next chunk comes in a later step). A sequence whose last chunk ran gets its first
 * token at the end of that step, and decoding sequences one more each. A step lasts the
 * prefill overhead plus its prompt tokens at the prefill rate (when it carries any), plus a
 * decode time that grows with the sequences in it. Finished prompts stay in an LRU prefix cache
 * of KV blocks until space is needed (a prompt's blocks count as cached from its admission). A
 * cancelled request leaves at the next step, freeing its slot and blocks.
 *
 * The order, for admission and for the budget, is arrival (`fcfs`, no overtaking) or, under
 * `priority` scheduling, priority then arrival: a high-priority prompt admitted now is computed
 * in the next step ahead of lower priorities' chunks and decodes, as vLLM's V0 priority
 * scheduler sorts its running queue by priority (its V1 scheduler serves the running list in
 * admission order, then the waiting queue by priority: the same unless the budget runs out
 * first). When the first waiting request finds no slot or KV room, running sequences of lower
 * priority are preempted for it, lowest priority and latest arrival first, as vLLM V0's
 * `_schedule_priority_preemption` does (V1 preempts only when KV blocks run out, picking the
 * same victim: the largest (priority value, arrival)). A preempted sequence frees its
 * slot and blocks and waits again in its old place; readmitted, it recomputes its KV (prompt
 * tokens not in the prefix cache, plus the tokens it had already produced: only prompt blocks
 * are cached here) and goes on from where it stopped. A step in progress is never interrupted,
 * so an urgent request waits for the current step to end; the budget bounds how long that is.
 */
export class SimEngine {
  readonly config: EngineConfig;
  readonly #clock: Clock;
  readonly #waiting = new WaitingList<Sequence>();
  readonly #running = new Set<Sequence>();
  /** Prefix cache: block hash -> true, least recently used first. */
  readonly #cache = new Map<number, true>();
  /** The cached blocks that end a landmark-length prefix, least recently used first. */
  readonly #landmarks = new Map<number, true>();
  /** The published summary, rebuilt only after the cache changed. */
  #summary: readonly number[] | undefined;
  readonly #capacityBlocks: number;
  #reservedBlocks = 0;
  #loop: Promise<void> | undefined;
  #promptTokens = 0;
  #cachedTokens = 0;
  #arrivals = 0;
  #preemptions = 0;
  readonly #recentTokens: number[] = [];
  readonly #stepListeners = new Set<(step: EngineStep) => void>();

  constructor(config: Partial<EngineConfig> = {}, clock: Clock) {
    this.config = { ...DEFAULT_ENGINE, ...config };
    for (const [key, value] of Object.entries(this.config)) {
      if (key === 'scheduling') {
        if (value !== 'fcfs' && value !== 'priority') throw invalidOption('engine scheduling', value, "'fcfs' or 'priority'");
        continue;
      }
      if (key === 'maxBatchedTokens') {
        // A budget below one token would never let a step compute anything.
        if (typeof value !== 'number' || !(value >= 1) || (value !== Infinity && !Number.isInteger(value)))
          throw invalidOption('engine maxBatchedTokens', value, 'an integer >= 1 or Infinity');
        continue;
      }
      if (typeof value !== 'number' || !(value >= 0) || (key === 'slots' && (!Number.isInteger(value) || value < 1))) {
        throw invalidOption(`engine ${key}`, value, key === 'slots' ? 'an integer >= 1' : 'a number >= 0');
      }
    }
    this.#clock = clock;
    this.#capacityBlocks = Math.floor(this.config.kvCapacityTokens / this.config.blockTokens);
  }

  /** Generates up to `maxTokens` tokens (their indices), returning the usage. */
  async *generate(request: SimRequest): AsyncGenerator<number, SimUsage> {
    const blocks = Math.ceil((request.promptTokens + request.maxTokens) / this.config.blockTokens);
    if (blocks > this.#capacityBlocks) {
      // The caller's mistake, as a real engine answers it (vLLM: 400, "maximum context length"):
      // no retry elsewhere helps and the worker is not at fault.
      throw new RpcError(
        RpcCode.INVALID_ARGUMENT,
        `the prompt (${request.promptTokens} tokens) and maxTokens (${request.maxTokens}) need ${request.promptTokens + request.maxTokens} tokens; this engine holds at most ${this.config.kvCapacityTokens} (its KV capacity)`,
      );
    }
    const priority = request.priority ?? 0;
    if (typeof priority !== 'number' || !Number.isFinite(priority)) throw invalidOption('request priority', priority, 'a finite number (higher runs first)');
    const sequence: Sequence = {
      request,
      arrivedAt: this.#clock.now(),
      order: this.#arrivals++,
      priority: this.config.scheduling === 'priority' ? priority : 0,
      blocks,
      cachedTokens: 0,
      prefilling: false,
      prefillLeft: 0,
      produced: 0,
      preemptions: 0,
      firstTokenAt: undefined,
      queue: [],
      wake: undefined,
      done: false,
    };
    // The front end's share of the fixed cost: the request is not the GPU's until it has passed.
    if (this.config.requestOverheadMs > 0) await this.#clock.sleep(this.config.requestOverheadMs);
    this.#waiting.insert(sequence);
    this.#loop ??= this.#run().finally(() => {
      this.#loop = undefined;
    });
    try {
      for (;;) {
        if (sequence.queue.length > 0) {
          yield sequence.queue.shift()!;
          continue;
        }
        if (sequence.done) break;
        await new Promise<void>((resolve) => (sequence.wake = resolve));
      }
    } finally {
      // The reader left (or the request was cancelled): the sequence goes at the next step.
      sequence.done = true;
    }
    return {
      promptTokens: request.promptTokens,
      cachedTokens: sequence.cachedTokens,
      outputTokens: sequence.produced,
      ttftMs: (sequence.firstTokenAt ?? this.#clock.now()) - sequence.arrivedAt,
      preemptions: sequence.preemptions,
    };
  }

  /** Sequences preempted by higher-priority work since the engine started. */
  get preemptions(): number {
    return this.#preemptions;
  }

  /**
   * Calls `listener` as each step starts, with what it computes and how long it lasts (for
   * tests and benchmarks). Returns a function that stops the calls.
   */
  onStep(listener: (step: EngineStep) => void): () => void {
    this.#stepListeners.add(listener);
    return () => void this.#stepListeners.delete(listener);
  }

  /** The live load snapshot. */
  load(): EngineLoad {
    const now = this.#clock.now();
    while (this.#recentTokens.length > 0 && now - this.#recentTokens[0]! > 1000) this.#recentTokens.shift();
    let waitingUncached = 0;
    for (const sequence of this.#waiting) waitingUncached += sequence.request.promptTokens - this.#cachedPrefixTokens(sequence.request);
    return {
      running: this.#running.size,
      waiting: this.#waiting.length,
      waitingUncachedTokens: waitingUncached,
      kvUsage: this.#reservedBlocks / this.#capacityBlocks,
      cacheHitRate: this.#promptTokens === 0 ? 0 : this.#cachedTokens / this.#promptTokens,
      tokensPerSecond: this.#recentTokens.length,
      cachedPrefixes: this.#cacheSummary(),
    };
  }

  #cacheSummary(): readonly number[] {
    if (this.#summary === undefined) {
      const recentLast = [...this.#landmarks.keys()];
      this.#summary = recentLast.slice(-MAX_CACHE_SUMMARY).reverse();
    }
    return this.#summary;
  }

  async #run(): Promise<void> {
    const config = this.config;
    while (this.#running.size > 0 || this.#waiting.length > 0) {
      // Leave: finished, cancelled, or abandoned sequences free their slot and blocks.
      for (const sequence of [...this.#running]) {
        if (gone(sequence)) this.#release(sequence);
      }
      this.#waiting.removeWhere((sequence) => {
        if (!gone(sequence)) return false;
        this.#finish(sequence);
        return true;
      });
      this.#admit();
      if (this.#running.size === 0) {
        // Nothing can run: wait for a cancellation or a new request rather than spin.
        await this.#clock.sleep(config.decodeBaseMs);
        continue;
      }
      const plan = planStep([...this.#running].sort(order), config.maxBatchedTokens);
      const step = { startedAt: this.#clock.now(), ...stepTime(config, plan) };
      for (const listener of this.#stepListeners) listener(step);
      await this.#clock.sleep(step.ms);
      const now = this.#clock.now();
      for (const [sequence, tokens] of plan) {
        if (gone(sequence)) continue;
        if (sequence.prefilling) {
          sequence.prefillLeft -= tokens;
          // A chunk that does not end the prompt samples no token.
          if (sequence.prefillLeft > 0) continue;
          sequence.prefilling = false;
        }
        sequence.firstTokenAt ??= now;
        sequence.queue.push(sequence.produced++);
        this.#recentTokens.push(now);
        if (sequence.produced >= sequence.request.maxTokens) sequence.done = true;
        const wake = sequence.wake;
        sequence.wake = undefined;
        wake?.();
      }
    }
  }

  /**
   * Admits waiting sequences in order while a slot and their KV blocks are free (no overtaking),
   * preempting lower-priority running ones for the first in line when that makes room, and
   * while the running sequences served before it leave some of the step's budget (vLLM admits
   * from its waiting queue only while budget is left).
   */
  #admit(): void {
    for (let next = this.#waiting.head(); next !== undefined; next = this.#waiting.head()) {
      if (this.#claimedBefore(next) >= this.config.maxBatchedTokens) break;
      if (!this.#fits(next) && !this.#preemptFor(next)) break;
      const sequence = this.#waiting.shift()!;
      const cached = this.#cachedPrefixTokens(sequence.request);
      const recomputed = sequence.produced;
      if (recomputed === 0) {
        sequence.cachedTokens = cached;
        this.#promptTokens += sequence.request.promptTokens;
        this.#cachedTokens += cached;
      }
      sequence.prefilling = true;
      sequence.prefillLeft = sequence.request.promptTokens - cached + recomputed;
      this.#reservedBlocks += sequence.blocks;
      this.#touch(sequence.request.promptBlocks);
      this.#running.add(sequence);
    }
  }

  /** The budget the running sequences served before `sequence` in a step would take. */
  #claimedBefore(sequence: Sequence): number {
    let claimed = 0;
    for (const running of this.#running) if (order(running, sequence) < 0) claimed += running.prefilling ? running.prefillLeft : 1;
    return claimed;
  }

  #fits(sequence: Sequence): boolean {
    return this.#running.size < this.config.slots && this.#reservedBlocks + sequence.blocks <= this.#capacityBlocks;
  }

  /**
   * Preempts running sequences of lower priority than `sequence`, lowest priority and latest
   * arrival first, until it fits; preempts none when even all of them would not make room.
   */
  #preemptFor(sequence: Sequence): boolean {
    const victims = [...this.#running].filter((running) => running.priority < sequence.priority).sort((a, b) => (before(a, b) ? 1 : -1));
    let slots = this.#running.size;
    let blocks = this.#reservedBlocks;
    let needed = 0;
    while (slots >= this.config.slots || blocks + sequence.blocks > this.#capacityBlocks) {
      const victim = victims[needed++];
      if (victim === undefined) return false;
      slots--;
      blocks -= victim.blocks;
    }
    for (const victim of victims.slice(0, needed)) {
      this.#running.delete(victim);
      this.#reservedBlocks -= victim.blocks;
      victim.preemptions++;
      this.#preemptions++;
      this.#waiting.insert(victim);
    }
    return true;
  }

  #release(sequence: Sequence): void {
    this.#running.delete(sequence);
    this.#reservedBlocks -= sequence.blocks;
    this.#finish(sequence);
  }

  #finish(sequence: Sequence): void {
    sequence.done = true;
    const wake = sequence.wake;
    sequence.wake = undefined;
    wake?.();
  }

  /** Prompt tokens already in the prefix cache (whole leading blocks). */
  #cachedPrefixTokens(request: SimRequest): number {
    let blocks = 0;
    while (blocks < request.promptBlocks.length && this.#cache.has(request.promptBlocks[blocks]!)) blocks++;
    return Math.min(request.promptTokens, blocks * this.config.blockTokens);
  }

  /**
   * Puts a prompt's blocks in the prefix cache as most recently used, last block first so the
   * shared first blocks are the last to go (as vLLM evicts a sequence's tail first), and evicts
   * beyond what the running sequences leave free.
   */
  #touch(blocks: readonly number[]): void {
    for (let i = blocks.length - 1; i >= 0; i--) {
      this.#cache.delete(blocks[i]!);
      this.#cache.set(blocks[i]!, true);
      if (isLandmark(i + 1)) {
        this.#landmarks.delete(blocks[i]!);
        this.#landmarks.set(blocks[i]!, true);
      }
    }
    const room = Math.max(0, this.#capacityBlocks - this.#reservedBlocks);
    while (this.#cache.size > room) {
      const oldest = this.#cache.keys().next().value as number;
      this.#cache.delete(oldest);
      this.#landmarks.delete(oldest);
    }
    this.#summary = undefined;
  }
}

/** The order in which running sequences get a step's budget: the admission order, `before`. */
function order(a: Sequence, b: Sequence): number {
  return before(a, b) ? -1 : before(b, a) ? 1 : 0;
}

/** Whether a sequence is over: finished, cancelled, or its reader left. */
function gone(sequence: Sequence): boolean {
  return sequence.done || sequence.request.signal?.aborted === true;
}
