/*
 * Seeded workloads for bench:routing. Prompts are text (4 characters a token, as the router and
 * the simulated workers assume), arrivals a Poisson process at the offered rate.
 */

export interface WorkItem {
  /** Arrival time, ms of virtual time (ignored by a closed-loop run). */
  at: number;
  prompt: string;
  maxTokens: number;
  /** A closed-loop run's session (a user): its items run in order, one at a time. */
  session?: number;
}

/** The same requests (drawn at 1/s) arriving `ratePerSecond` times as fast: one Poisson draw, every load. */
export function atRate(items: readonly WorkItem[], ratePerSecond: number): WorkItem[] {
  return items.map((item) => ({ ...item, at: item.at / ratePerSecond }));
}

export type WorkloadName = 'b2b' | 'multi-turn' | 'unique' | 'hot';

/** A small deterministic PRNG (mulberry32). */
export function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function text(rand: () => number, tokens: number, tag: string): string {
  const words: string[] = [tag];
  let length = tag.length;
  while (length < tokens * 4) {
    const word = ` w${Math.floor(rand() * 50_000)}`;
    words.push(word);
    length += word.length;
  }
  return words.join('').slice(0, tokens * 4);
}

/**
 * (a) b2b: `systems` long system prompts (~6k tokens) shared by many requests (Zipf-like
 * popularity), each with a unique ~1.2k-token question; (b) multi-turn: users whose prompt is
 * their growing conversation; (c) unique: no reuse at all; (d) hot: one ~4k-token prefix (an
 * agent's tool manual) in 60 % of the requests, each with a unique ~800-token task, the rest
 * unique ~2k-token prompts — a prefix popular enough that one worker cannot serve it alone.
 */
export function workload(name: WorkloadName, seed: number, requests: number, ratePerSecond = 1): WorkItem[] {
  const rand = random(seed);
  let at = 0;
  const arrive = (): number => (at += (-Math.log(1 - rand()) / ratePerSecond) * 1000);
  const output = (): number => 100 + Math.floor(rand() * 100);
  if (name === 'b2b') {
    const systems = Array.from({ length: 150 }, (_, i) => text(random(seed * 1000 + i), 6000, `system-${i}:`));
    return Array.from({ length: requests }, (_, i) => {
      const system = systems[Math.floor(rand() ** 2 * systems.length)]!;
      return { at: arrive(), prompt: `${system}${text(rand, 1200, ` q${i}:`)}`, maxTokens: output() };
    });
  }
  if (name === 'multi-turn') {
    const histories: string[] = [];
    return Array.from({ length: requests }, (_, i) => {
      const user = Math.floor(rand() * Math.max(1, requests / 6));
      histories[user] = `${histories[user] ?? text(random(seed * 7 + user), 500, `user-${user}:`)}${text(rand, 300, ` t${i}:`)}`;
      return { at: arrive(), prompt: histories[user]!, maxTokens: output() };
    });
  }
  if (name === 'hot') {
    const hot = text(random(seed * 13 + 5), 4000, 'hot-prefix:');
    return Array.from({ length: requests }, (_, i) => {
      const prompt = rand() < 0.6 ? `${hot}${text(rand, 800, ` task${i}:`)}` : text(rand, 2000, `unique-${i}:`);
      return { at: arrive(), prompt, maxTokens: output() };
    });
  }
  return Array.from({ length: requests }, (_, i) => ({ at: arrive(), prompt: text(rand, 2000, `unique-${i}:`), maxTokens: output() }));
}

/**
 * The prompt-cache hit rate of an oracle with one unbounded cache: each prompt's longest
 * prefix (in 16-token blocks) that any earlier prompt shared, over all prompt tokens. No
 * fleet of bounded caches behind a router can beat it.
 */
export function oracleHitRate(items: readonly WorkItem[], blockHashes: (prompt: string) => readonly number[]): number {
  const seen = new Set<number>();
  let cached = 0;
  let total = 0;
  for (const item of items) {
    const hashes = blockHashes(item.prompt);
    let blocks = 0;
    while (blocks < hashes.length && seen.has(hashes[blocks]!)) blocks++;
    for (const hash of hashes) seen.add(hash);
    const tokens = Math.ceil(item.prompt.length / 4);
    cached += Math.min(tokens, blocks * 16);
    total += tokens;
  }
  return total === 0 ? 0 : cached / total;
}

/** The 16-token KV block hashes of prompts, each computed once (the engine caches by them; hashing is the simulation's main cost). */
export function blockHasher(hash: (prompt: string) => number[]): (prompt: string) => readonly number[] {
  const known = new Map<string, number[]>();
  return (prompt) => {
    let blocks = known.get(prompt);
    if (blocks === undefined) {
      blocks = hash(prompt);
      known.set(prompt, blocks);
    }
    return blocks;
  };
}
