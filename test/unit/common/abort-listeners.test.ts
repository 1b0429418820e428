import { getEventListeners } from 'node:events';
import { describe, expect, it } from 'vitest';
import { listenAbort, unlistenAbort } from '../../../src/common/abort-listeners.js';

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
