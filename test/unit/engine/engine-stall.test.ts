import { describe, expect, it } from 'vitest';
import { EngineStall } from '../../../src/engine/engine-stall.js';

/*
 * An engine counts as stalled when requests are in flight and none has heard anything from it
 * for the stall time; it is not stalled while idle, and stops being stalled when it speaks or
 * when no request waits on it. Each change is reported once. The clock is the test's.
 */
function watched(stallMs: number) {
  let now = 1000;
  const changes: Array<[boolean, string]> = [];
  const stall = new EngineStall(
    stallMs,
    (stalled, reason) => changes.push([stalled, reason]),
    () => now,
  );
  return { stall, changes, pass: (ms: number) => (now += ms) };
}

describe('EngineStall', () => {
  it('stalls only with requests in flight and silence for the whole stall time; is back when heard or when nothing waits', () => {
    const { stall, changes, pass } = watched(60);
    // Idle for longer than the stall time: an idle engine owes nothing.
    pass(500);
    expect(stall.stalled).toBe(false);
    stall.begin();
    pass(30);
    stall.heard();
    pass(59);
    expect(stall.stalled).toBe(false);
    pass(1);
    expect(stall.stalled).toBe(true);
    expect(stall.stalled).toBe(true);
    expect(changes).toEqual([[true, '1 request(s) in flight and nothing heard from the engine for 60 ms']]);
    stall.heard();
    expect(stall.stalled).toBe(false);
    expect(changes[1]).toEqual([false, 'the engine answered again']);
    // Silent again, then its last request ends: not stalled, whatever the silence.
    pass(100);
    expect(stall.stalled).toBe(true);
    stall.end();
    expect(stall.stalled).toBe(false);
    expect(changes.map(([stalled]) => stalled)).toEqual([true, false, true, false]);
    expect(changes[3]![1]).toBe('no request waits on the engine any more');
  });

  it('counts the silence of a request sent to an idle engine from when it was sent, and never counts requests below zero', () => {
    const { stall, pass } = watched(60);
    pass(1000);
    stall.begin();
    // Last heard a second ago, but nothing was owed then.
    expect(stall.stalled).toBe(false);
    pass(60);
    expect(stall.stalled).toBe(true);
    stall.begin();
    stall.end();
    stall.end();
    stall.end();
    expect(stall.stalled).toBe(false);
    stall.begin();
    expect(stall.stalled).toBe(false);
    pass(59);
    expect(stall.stalled).toBe(false);
  });
});
