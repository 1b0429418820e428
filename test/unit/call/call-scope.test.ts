import { describe, expect, it } from 'vitest';
import { armCallScopes, callScopesArmed, currentCallScope, runInCallScope, type CallScope } from '../../../src/call/call-scope.js';

const tick = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 1));
const scope = (deadline: number): CallScope => ({ deadline, signal: new AbortController().signal });

/*
 * One process's life, in order (the module's state is the process's): first a pure provider,
 * then a client made inside a handler, then a provider with a client.
 */
describe('call scopes', () => {
  it('a provider without a client runs its handlers without following scopes (no AsyncLocalStorage hooks)', async () => {
    for (let i = 0; i < 3; i++) {
      expect(await runInCallScope(scope(i), async () => (await tick(), i))).toBe(i);
    }
    expect(callScopesArmed()).toBe(false);
  });

  it('a client made in a handler’s synchronous part arms the process and joins that call, which the caller’s turn does not', async () => {
    const first = scope(1);
    const seen = await runInCallScope(first, async () => {
      armCallScopes(); // what createClient does before its first await
      await tick();
      return currentCallScope();
    });
    expect(seen).toBe(first);
    expect(callScopesArmed()).toBe(true);
    // The rest of the turn that ran the handler belongs to the transport: no scope there.
    expect(currentCallScope()).toBeUndefined();
  });

  it('nested synchronous parts (a stream pump around its handler): the scope is left only when the outermost returns', async () => {
    // Armed by now: every call is followed across its awaits.
    const outer = scope(2);
    const seen = await runInCallScope(outer, () =>
      runInCallScope(outer, async () => {
        await tick();
        return currentCallScope();
      }),
    );
    expect(seen).toBe(outer);
    const other = scope(3);
    const [a, b] = await Promise.all([
      runInCallScope(outer, async () => (await tick(), currentCallScope())),
      runInCallScope(other, async () => (await tick(), currentCallScope())),
    ]);
    expect(a).toBe(outer);
    expect(b).toBe(other);
    expect(currentCallScope()).toBeUndefined();
  });
});
