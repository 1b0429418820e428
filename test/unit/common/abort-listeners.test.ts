import { getEventListeners } from 'node:events';
import { describe, expect, it } from 'vitest';
import { linkSignals, listenAbort, unlistenAbort } from '../../../src/common/abort-listeners.js';
import { dependantSignals } from '../../helpers/signals.js';

describe('abort listeners', () => {
  it('give a signal one listener however many are added, and call each once, in order, when it aborts', () => {
    const controller = new AbortController();
    const calls: number[] = [];
    const listeners = Array.from({ length: 50 }, (_, i) => () => void calls.push(i));
    for (const listener of listeners) listenAbort(controller.signal, listener);
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(1);
    unlistenAbort(controller.signal, listeners[3]!);
    controller.abort();
    controller.abort();
    expect(calls).toEqual(Array.from({ length: 50 }, (_, i) => i).filter((i) => i !== 3));
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0);
  });

  it('take the signal’s listener away with the last one removed, and accept no signal', () => {
    const controller = new AbortController();
    const first = (): void => {};
    const second = (): void => {};
    listenAbort(controller.signal, first);
    listenAbort(controller.signal, second);
    unlistenAbort(controller.signal, first);
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(1);
    unlistenAbort(controller.signal, second);
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0);
    // Removing what was never added, or with no signal, does nothing.
    unlistenAbort(controller.signal, first);
    listenAbort(undefined, first);
    unlistenAbort(undefined, first);
  });
});

describe('linked signals', () => {
  it('abort with either source and its reason, and once released leave neither source holding anything', () => {
    for (const which of ['first', 'second'] as const) {
      const first = new AbortController();
      const second = new AbortController();
      const linked = linkSignals(first.signal, second.signal);
      expect(linked.signal.aborted).toBe(false);
      const reason = new Error(which);
      (which === 'first' ? first : second).abort(reason);
      expect(linked.signal.aborted).toBe(true);
      expect(linked.signal.reason).toBe(reason);
      // The abort unhooked the link from the other source as well.
      expect(getEventListeners(first.signal, 'abort')).toHaveLength(0);
      expect(getEventListeners(second.signal, 'abort')).toHaveLength(0);
    }
    const kept = new AbortController();
    for (let i = 0; i < 1000; i++) linkSignals(kept.signal, new AbortController().signal).release();
    expect(getEventListeners(kept.signal, 'abort')).toHaveLength(0);
    expect(dependantSignals(kept.signal)).toBe(0);
    const released = linkSignals(kept.signal, new AbortController().signal);
    released.release();
    released.release();
    kept.abort();
    expect(released.signal.aborted).toBe(false);
  });

  it('are aborted at once when a source has aborted already', () => {
    const reason = new Error('gone');
    const linked = linkSignals(new AbortController().signal, AbortSignal.abort(reason));
    expect(linked.signal.aborted).toBe(true);
    expect(linked.signal.reason).toBe(reason);
    linked.release();
  });
});
