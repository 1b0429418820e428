import { describe, expect, it } from 'vitest';
import { withoutDraining } from '../../../src/client/draining.js';
import type { LoadSnapshot, ServiceInstance } from '../../../src/registry/instance.js';

/*
 * A provider's newest load decides whether new calls may go to it: a piggybacked answer load
 * that says draining takes it out of the candidates until a newer registry snapshot (by the
 * provider's own timestamp) says otherwise; never the last candidate.
 */
const load = (timestamp: number, draining: boolean): LoadSnapshot => ({
  timestamp,
  running: 0,
  waiting: 0,
  waitingUncachedTokens: 0,
  kvUsage: 0,
  tokensPerSecond: 0,
  draining,
});

function view(name: string, registry: LoadSnapshot | undefined, answer: LoadSnapshot | undefined) {
  return { name, instance: { load: registry } as unknown as ServiceInstance, stats: { load: answer } };
}

describe('withoutDraining', () => {
  it.each([
    ['an answer newer than the registry says draining: left out', load(100, false), load(200, true), ['b']],
    ['an answer says draining, no registry load: left out', undefined, load(200, true), ['b']],
    ['a newer registry snapshot no longer says draining: kept', load(300, false), load(200, true), ['a', 'b']],
    ['the answer says serving: kept', load(100, false), load(200, false), ['a', 'b']],
    ['no answer load: kept (the directory has judged the registry load already)', load(100, false), undefined, ['a', 'b']],
  ] as const)('%s', (_case, registry, answer, expected) => {
    const views = [view('a', registry, answer), view('b', load(100, false), load(200, false))];
    expect(withoutDraining(views).map((kept) => kept.name)).toEqual(expected);
  });

  it('keeps every candidate when each says draining, and a lone candidate whatever it says', () => {
    const both = [view('a', undefined, load(1, true)), view('b', undefined, load(1, true))];
    expect(withoutDraining(both)).toBe(both);
    const one = [view('a', undefined, load(1, true))];
    expect(withoutDraining(one)).toBe(one);
  });
});
