import { describe, expect, it } from 'vitest';
import { MAX_TRACKED_METHODS, MethodKeys, type MethodKey } from '../../../src/client/method-wait.js';
import { ProviderStatsTable, type LiveProviderStats } from '../../../src/client/provider-stats.js';
import { withoutStalled } from '../../../src/client/stalled.js';

/*
 * The stall rule with the real statistics classes, on a simulated clock: a fleet of
 * inference-like workers, each with slow calls (`generate`, seconds) and fast ones (`embed`,
 * 5 ms). Calls go round-robin over the candidates the rule leaves, as `round-robin` picks.
 */
interface View {
  readonly address: string;
  readonly stats: LiveProviderStats;
}

class Fleet {
  readonly table = new ProviderStatsTable();
  readonly views: View[];
  readonly generate = this.table.methodKey('inference.LLM', 'generate');
  readonly embed = this.table.methodKey('inference.LLM', 'embed');
  now = 1_000_000;
  #next = 0;
  /** Calls in flight: when each ends, and how. */
  readonly #ends: Array<{ at: number; view: View; method: MethodKey; started: number; ok: boolean }> = [];

  constructor(size: number) {
    this.views = Array.from({ length: size }, (_, i) => ({ address: `10.0.0.${i}:1`, stats: this.table.get(`10.0.0.${i}:1`) }));
  }

  /** The candidates the rule leaves for a call of `method` now. */
  candidates(method: MethodKey): readonly View[] {
    return withoutStalled(this.views, method, this.now);
  }

  /** Sends a call of `method` lasting `ms` (forever: Infinity) to `view`, or to the next candidate round-robin. */
  call(method: MethodKey, ms: number, view?: View): View {
    const candidates = this.candidates(method);
    const to = view ?? candidates[this.#next++ % candidates.length]!;
    to.stats.start(0, this.now, method);
    this.#ends.push({ at: this.now + ms, view: to, method, started: this.now, ok: true });
    return to;
  }

  /** Moves the clock to `at`, ending the calls due by then in time order. */
  advance(at: number): void {
    this.#ends.sort((a, b) => a.at - b.at);
    while (this.#ends.length > 0 && this.#ends[0]!.at <= at) {
      const end = this.#ends.shift()!;
      this.now = end.at;
      end.view.stats.heard(end.at, end.method);
      end.view.stats.end(0, end.at - end.started, end.at, false, end.ok, end.method);
    }
    this.now = at;
  }

  /** Teaches every provider a typical time for `method`, with `count` calls. */
  learn(method: MethodKey, ms: number, count = 5): void {
    for (const view of this.views) {
      for (let i = 0; i < count; i++) this.call(method, ms, view);
      this.advance(this.now + ms);
    }
  }
}

describe('the stall rule, method by method', () => {
  it('fast calls after a lull spread over four workers that each have a slow call waiting (no collapse onto the first to answer)', () => {
    const fleet = new Fleet(4);
    // Fast calls far outnumber slow ones, as embeddings do generations.
    fleet.learn(fleet.generate, 10_000);
    fleet.learn(fleet.embed, 5, 60);
    // A 20 s generation waiting on every worker, then 1.5 s with no fast calls.
    for (const view of fleet.views) fleet.call(fleet.generate, 20_000, view);
    fleet.advance(fleet.now + 1500);
    // 100 fast calls, one every 20 ms, each answered in 5 ms.
    const share = new Map<string, number>();
    for (let i = 0; i < 100; i++) {
      const to = fleet.call(fleet.embed, 5);
      share.set(to.address, (share.get(to.address) ?? 0) + 1);
      fleet.advance(fleet.now + 20);
    }
    // Judged by one typical time for all methods, the first to answer got all 100.
    expect(share.size).toBe(4);
    for (const calls of share.values()) expect(calls).toBe(25);
    // New slow calls spread too: none of the slow calls waiting is past what generate takes.
    expect(fleet.candidates(fleet.generate)).toHaveLength(4);
  });

  it('a provider whose calls of one method hang is passed over for that method alone while its other method answers', () => {
    const fleet = new Fleet(3);
    fleet.learn(fleet.embed, 5);
    fleet.learn(fleet.generate, 2000);
    const [stuck] = fleet.views;
    // Its embed calls never answer; its generate calls do, every 500 ms.
    fleet.call(fleet.embed, Number.POSITIVE_INFINITY, stuck);
    for (let t = 0; t < 4; t++) {
      fleet.call(fleet.generate, 400, stuck);
      fleet.advance(fleet.now + 500);
    }
    expect(fleet.candidates(fleet.embed)).not.toContain(stuck);
    expect(fleet.candidates(fleet.generate)).toContain(stuck);
  });

  it('a provider whose whole process hangs is passed over for every method, its slow one included', () => {
    const fleet = new Fleet(3);
    fleet.learn(fleet.embed, 5);
    fleet.learn(fleet.generate, 10_000);
    const [hung] = fleet.views;
    fleet.call(fleet.generate, Number.POSITIVE_INFINITY, hung);
    fleet.call(fleet.embed, Number.POSITIVE_INFINITY, hung);
    fleet.advance(fleet.now + 900);
    expect(fleet.candidates(fleet.generate)).toContain(hung);
    // An embed unanswered for 1.1 s and nothing else heard: hung, for generate calls too,
    // though its generation is far from what generate takes.
    fleet.advance(fleet.now + 200);
    expect(fleet.candidates(fleet.embed)).not.toContain(hung);
    expect(fleet.candidates(fleet.generate)).not.toContain(hung);
  });

  it('a hung process stays passed over for its slow method once its fast calls gave up at their deadline, until it answers', () => {
    const fleet = new Fleet(3);
    fleet.learn(fleet.embed, 5);
    fleet.learn(fleet.generate, 10_000);
    const [hung] = fleet.views;
    const stats = hung!.stats;
    // An embed sent, unanswered at its 3 s deadline: the consumer ends it.
    const sent = fleet.now;
    stats.start(0, sent, fleet.embed);
    fleet.advance(sent + 3000);
    stats.gaveUp(sent, fleet.now, fleet.embed);
    stats.end(0, 3000, fleet.now, false, false, fleet.embed);
    // Only a generation waits there now, for 1.5 s: far from what generate takes.
    fleet.call(fleet.generate, Number.POSITIVE_INFINITY, hung);
    fleet.advance(fleet.now + 1500);
    expect(fleet.candidates(fleet.generate)).not.toContain(hung);
    // Its first answer of anything ends that.
    stats.heard(fleet.now);
    expect(fleet.candidates(fleet.generate)).toContain(hung);
  });

  it('a provider with only streams in flight that are between chunks is never passed over', () => {
    const fleet = new Fleet(2);
    fleet.learn(fleet.generate, 50);
    const [streaming] = fleet.views;
    streaming!.stats.start(0, fleet.now, fleet.generate);
    fleet.advance(fleet.now + 30);
    // Its first chunk; then ten minutes of chunks, each one a while after the last.
    streaming!.stats.answered(0, fleet.now, fleet.generate);
    fleet.advance(fleet.now + 600_000);
    expect(fleet.candidates(fleet.generate)).toContain(streaming);
    expect(fleet.candidates(fleet.embed)).toContain(streaming);
  });

  it('a method that is always slow (a 60 s batch job) passes over nobody, before its first answer and after', () => {
    const fleet = new Fleet(4);
    const batch = fleet.table.methodKey('jobs.Batch', 'run');
    fleet.learn(fleet.embed, 5);
    // A fresh consumer: no batch has answered yet; one runs on every worker, no fast calls for 30 s.
    for (const view of fleet.views) fleet.call(batch, 60_000, view);
    fleet.advance(fleet.now + 30_000);
    expect(fleet.candidates(fleet.embed)).toHaveLength(4);
    // Once they have answered, the next ones are judged by the minute they take.
    fleet.advance(fleet.now + 30_000);
    for (const view of fleet.views) fleet.call(batch, 60_000, view);
    fleet.advance(fleet.now + 120_000);
    expect(fleet.candidates(batch)).toHaveLength(4);
    expect(fleet.candidates(fleet.embed)).toHaveLength(4);
  });

  it('a fresh consumer passes over a provider whose first calls of a method wait past the floor for that method only', () => {
    const fleet = new Fleet(2);
    const [first, second] = fleet.views;
    fleet.call(fleet.generate, 20_000, first);
    fleet.advance(fleet.now + 1100);
    // No typical time yet: the floor. The provider still gets calls of other methods.
    expect(fleet.candidates(fleet.generate)).toEqual([second]);
    expect(fleet.candidates(fleet.embed)).toHaveLength(2);
    // Both waiting: nobody to prefer.
    fleet.call(fleet.generate, 20_000, second);
    fleet.advance(fleet.now + 1100);
    expect(fleet.candidates(fleet.generate)).toHaveLength(2);
  });

  it('a fresh consumer whose first slow calls all wait past the floor still passes over a hung provider for them', () => {
    const fleet = new Fleet(4);
    fleet.learn(fleet.embed, 5);
    const [hung] = fleet.views;
    // No generate has answered yet: every worker's first one waits past the floor.
    for (const view of fleet.views) fleet.call(fleet.generate, 20_000, view);
    fleet.call(fleet.embed, Number.POSITIVE_INFINITY, hung);
    fleet.advance(fleet.now + 1500);
    // The hung one's embed shows it: it is dropped; the others, passed over on the floor alone, stay.
    const candidates = fleet.candidates(fleet.generate);
    expect(candidates).toHaveLength(3);
    expect(candidates).not.toContain(hung);
  });

  it('a mixed fleet judges a method by its slowest provider: a fast worker on a long call is not hung', () => {
    const fleet = new Fleet(2);
    const [fast, slow] = fleet.views;
    for (let i = 0; i < 5; i++) fleet.call(fleet.generate, 5000, fast);
    for (let i = 0; i < 5; i++) fleet.call(fleet.generate, 20_000, slow);
    fleet.advance(fleet.now + 20_000);
    fleet.call(fleet.generate, Number.POSITIVE_INFINITY, fast);
    fleet.advance(fleet.now + 50_000);
    // 50 s: ten times the fast one's own typical, under four times the slowest's (80 s).
    expect(fleet.candidates(fleet.generate)).toContain(fast);
    fleet.advance(fleet.now + 31_000);
    expect(fleet.candidates(fleet.generate)).not.toContain(fast);
  });

  it(`tracks at most ${MAX_TRACKED_METHODS} methods apart; the rest share one key`, () => {
    const keys = new MethodKeys();
    const made = Array.from({ length: 200 }, (_, i) => keys.of(`svc${i % 3}`, `m${i}`));
    expect(new Set(made).size).toBe(MAX_TRACKED_METHODS + 1);
    expect(keys.of('svc0', 'm0')).toBe(made[0]);
    expect(keys.of('svc9', 'never-seen')).toBe(made[199]);
    expect(Math.max(...made.map((key) => key.index))).toBe(MAX_TRACKED_METHODS);
  });
});
