import { setImmediate as nextTurn } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { CHUNKS_PER_TURN, chunkTurn } from '../../../src/transport/turn-budget.js';

describe('the chunks-per-turn budget of provider streams', () => {
  it('grants CHUNKS_PER_TURN chunks a turn, then lets waiters go in order, as many a turn as the budget', async () => {
    await nextTurn();
    await nextTurn();
    for (let i = 0; i < CHUNKS_PER_TURN; i++) expect(chunkTurn()).toBeUndefined();
    // Past the budget: 1.5 turns' worth of streams wait, each for the chunk it asked for.
    const order: number[] = [];
    const waiters = Array.from({ length: CHUNKS_PER_TURN * 1.5 }, (_, i) => chunkTurn()!.then(() => order.push(i)));
    expect(waiters).toHaveLength(CHUNKS_PER_TURN * 1.5);
    await nextTurn();
    // The next turn let the first CHUNKS_PER_TURN go, in the order they came...
    expect(order).toEqual(Array.from({ length: CHUNKS_PER_TURN }, (_, i) => i));
    // ...and spent that turn on them: a newcomer waits behind the rest.
    const late = chunkTurn();
    expect(late).toBeInstanceOf(Promise);
    let lateDone = false;
    void late!.then(() => (lateDone = true));
    await Promise.all(waiters);
    await late;
    expect(order).toEqual(Array.from({ length: CHUNKS_PER_TURN * 1.5 }, (_, i) => i));
    expect(lateDone).toBe(true);
    // A quiet turn later the budget is whole again.
    await nextTurn();
    await nextTurn();
    expect(chunkTurn()).toBeUndefined();
  });
});
