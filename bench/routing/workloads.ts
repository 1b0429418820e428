/*
 * Seeded workloads for bench:routing. Prompts are text (4 characters a token, as the router and
 * the simulated workers assume), arrivals a Poisson process at the offered rate.
 */

export interface WorkItem {
  /** Arrival time, ms of virtual time. */
  at: number;
  prompt: string;
  maxTokens: number;
}

export type WorkloadName = 'b2b' | 'multi-turn' | 'unique';

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
 * their growing conversation; (c) unique: no reuse at all.
 */
export function workload(name: WorkloadName, seed: number, requests: number, ratePerSecond: number): WorkItem[] {
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
  return Array.from({ length: requests }, (_, i) => ({ at: arrive(), prompt: text(rand, 2000, `unique-${i}:`), maxTokens: output() }));
}
