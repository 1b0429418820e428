import type { AdmissionClock, AdmissionOptions } from '../../src/admission/admission.js';
import { AdmissionQueue } from '../../src/admission/queue.js';
import { SimEngine, VirtualClock, type EngineConfig } from '../../src/sim/sim.js';
import { RpcCode, type RpcError } from '../../src/errors/errors.js';
import { LiveProviderStats } from '../../src/client/provider-stats.js';
import { HIGH_PRIORITY } from '../../src/admission/options.js';
import { leastPrefilling } from '../../src/loadbalance/urgent.js';
import { random } from '../routing/workloads.js';

/** One tenant's open-loop traffic: Poisson arrivals at `ratePerSecond` from `fromMs` to `toMs`. */
export interface Stream {
  tenant: string;
  priority?: number;
  ratePerSecond: number;
  fromMs?: number;
  toMs: number;
  promptTokens: number;
  outputTokens: number;
}

/** What happened to one request. */
export interface Outcome {
  tenant: string;
  priority: number;
  arrivedAt: number;
  /** Time to first token from arrival (queue wait included), when served. */
  ttftMs?: number;
  outputTokens: number;
  /** Times the engine preempted it for higher-priority work. */
  preemptions: number;
  /** `served`, `refused` (with a retry-after, before its deadline), `timed-out` (at its deadline) or `lost`. */
  fate: 'served' | 'refused' | 'timed-out' | 'lost';
  /** For a timed-out call: how far from its own deadline it failed, ms. */
  deadlineErrorMs?: number;
}

/** A run's outcomes and the fleet's use. */
export interface SimResult {
  outcomes: Outcome[];
  /** Mean fraction of the engines' batch slots running a sequence over [0, utilisationUntilMs]. */
  utilisation: number;
  maxQueued: number;
  maxQueuedTokens: number;
  /** Fraction of the engines' time spent in steps that compute prompt tokens, over the whole run. */
  prefillStepShare: number;
  /** Mean length of those steps, ms. */
  prefillStepMs: number;
}

export const WORKERS = 4;
export const SLOTS = 8;

/** The queue's clock on the simulator's virtual clock (cancelled timers just do nothing when due). */
function admissionClock(clock: VirtualClock): AdmissionClock {
  return {
    now: () => clock.now(),
    schedule: (ms, fn) => {
      let live = true;
      void clock.sleep(ms).then(() => live && fn());
      return () => void (live = false);
    },
  };
}

/** How one simulation runs (see {@link simulateAdmission}). */
export interface SimOptions {
  seed: number;
  deadlineMs: number;
  queue?: Partial<AdmissionOptions>;
  /** Engine settings beyond `slots` (`scheduling: 'priority'` to let engines order by priority). */
  engine?: Partial<EngineConfig>;
  utilisationUntilMs: number;
  fifo?: boolean;
  /**
   * The client's urgent-call rule (`urgentPriority`, `high` by default; `false`: off): a call of
   * at least this priority goes only to the engines with the fewest prompt tokens awaiting their
   * first token, counted as a client counts them.
   */
  urgentPriority?: number | false;
}

/**
 * Runs `streams` against `WORKERS` simulated engines of `SLOTS` slots behind an AdmissionQueue
 * whose capacity is their slots, on the virtual clock. An admitted call goes to the engine with
 * the fewest admitted calls, carrying its priority; an urgent one (see
 * {@link SimOptions.urgentPriority}) chooses among the engines computing the fewest prompts.
 * Each request's deadline is `deadlineMs` after its arrival. With `fifo`, every call is
 * admitted as one tenant: first come, first served within a priority.
 */
export async function simulateAdmission(streams: readonly Stream[], options: SimOptions): Promise<SimResult> {
  const clock = new VirtualClock(8);
  const engines = Array.from({ length: WORKERS }, () => new SimEngine({ ...options.engine, slots: SLOTS }, clock));
  const busy = new Array<number>(WORKERS).fill(0);
  // What a client knows of each engine: its calls there, and their prompts not yet answered.
  const views = Array.from({ length: WORKERS }, (_, index) => ({ index, stats: new LiveProviderStats() }));
  const urgentPriority = options.urgentPriority === false ? undefined : (options.urgentPriority ?? HIGH_PRIORITY);
  const pick = (priority: number): number => {
    const candidates = urgentPriority !== undefined && priority >= urgentPriority ? leastPrefilling(views) : views;
    let best = candidates[0]!.index;
    for (const view of candidates) if (busy[view.index]! < busy[best]!) best = view.index;
    return best;
  };
  const queue = new AdmissionQueue({ capacity: () => WORKERS * SLOTS, clock: admissionClock(clock), ...options.queue });
  const outcomes: Outcome[] = [];
  const result: SimResult = { outcomes, utilisation: 0, maxQueued: 0, maxQueuedTokens: 0, prefillStepShare: 0, prefillStepMs: 0 };
  const stepMs = { all: 0, prefill: 0, prefills: 0 };
  for (const engine of engines) {
    engine.onStep((step) => {
      stepMs.all += step.ms;
      if (step.prefillTokens === 0) return;
      stepMs.prefill += step.ms;
      stepMs.prefills++;
    });
  }
  const next = random(options.seed);
  let blockSeed = 1;

  const serve = async (stream: Stream, arrivedAt: number): Promise<void> => {
    const outcome: Outcome = { tenant: stream.tenant, priority: stream.priority ?? 1, arrivedAt, outputTokens: 0, preemptions: 0, fate: 'lost' };
    outcomes.push(outcome);
    const deadline = arrivedAt + options.deadlineMs;
    let ticket;
    try {
      ticket = await queue.admit({
        tenant: options.fifo ? 'everyone' : stream.tenant,
        priority: stream.priority,
        tokens: stream.promptTokens + stream.outputTokens,
        deadline,
      });
    } catch (error) {
      const code = (error as RpcError).code;
      outcome.fate =
        code === RpcCode.RESOURCE_EXHAUSTED && (error as RpcError).retryAfterMs !== undefined
          ? 'refused'
          : code === RpcCode.DEADLINE_EXCEEDED
            ? 'timed-out'
            : 'lost';
      if (outcome.fate === 'timed-out') outcome.deadlineErrorMs = clock.now() - deadline;
      return;
    }
    const worker = pick(outcome.priority);
    const stats = views[worker]!.stats;
    busy[worker]!++;
    stats.start(stream.promptTokens);
    try {
      const prompt = Array.from({ length: Math.floor(stream.promptTokens / 16) }, () => blockSeed++);
      const generation = engines[worker]!.generate({
        promptTokens: stream.promptTokens,
        promptBlocks: prompt,
        maxTokens: stream.outputTokens,
        priority: outcome.priority,
      });
      for (;;) {
        const step = await generation.next();
        if (step.done) {
          outcome.preemptions = step.value.preemptions;
          ticket.release(step.value.promptTokens - step.value.cachedTokens + step.value.outputTokens);
          break;
        }
        if (outcome.outputTokens++ === 0) {
          outcome.ttftMs = clock.now() - arrivedAt;
          stats.answered(stream.promptTokens);
        }
      }
      outcome.fate = 'served';
    } finally {
      stats.end(stream.promptTokens, 0, clock.now(), outcome.outputTokens > 0);
      busy[worker]!--;
      ticket.release();
    }
  };

  const pending: Promise<void>[] = [];
  for (const stream of streams) {
    pending.push(
      (async () => {
        let at = stream.fromMs ?? 0;
        for (;;) {
          at += (-Math.log(1 - next()) / stream.ratePerSecond) * 1000;
          if (at >= stream.toMs) return;
          await clock.sleep(at - clock.now());
          pending.push(serve(stream, at));
        }
      })(),
    );
  }
  let sampling = true;
  let busySum = 0;
  let samples = 0;
  const sampler = (async () => {
    while (sampling) {
      await clock.sleep(50);
      const stats = queue.stats();
      result.maxQueued = Math.max(result.maxQueued, stats.queued);
      result.maxQueuedTokens = Math.max(result.maxQueuedTokens, stats.queuedTokens);
      if (clock.now() <= options.utilisationUntilMs) {
        busySum += engines.reduce((sum, engine) => sum + engine.load().running, 0) / (WORKERS * SLOTS);
        samples++;
      }
    }
  })();
  const finished = Promise.all(pending).then(async () => {
    for (let seen = 0; seen < pending.length; seen = pending.length) await Promise.all(pending.slice(seen));
    sampling = false;
  });
  await clock.run();
  await finished;
  await sampler;
  result.utilisation = samples === 0 ? 0 : busySum / samples;
  result.prefillStepShare = stepMs.all === 0 ? 0 : stepMs.prefill / stepMs.all;
  result.prefillStepMs = stepMs.prefills === 0 ? 0 : stepMs.prefill / stepMs.prefills;
  return result;
}
