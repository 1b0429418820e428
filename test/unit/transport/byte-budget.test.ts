import { describe, expect, it } from 'vitest';
import { ByteBudget } from '../../../src/transport/byte-budget.js';

describe('ByteBudget', () => {
  it('wakes waiters in arrival order once there is room, and none while it is spent', () => {
    const budget = new ByteBudget(100);
    const woken: string[] = [];
    budget.charge(150);
    budget.wait(() => woken.push('a'));
    budget.wait(() => woken.push('b'));
    budget.charge(-20);
    expect(woken).toEqual([]);
    budget.charge(-40);
    expect(woken).toEqual(['a', 'b']);
    expect(budget.used).toBe(90);
  });

  it('without overdrafts, nobody may read past a spent budget', () => {
    const budget = new ByteBudget(100);
    budget.charge(150);
    expect(budget.overdraw({})).toBe(false);
  });

  it('with overdrafts, one holder at a time goes on past the limit; its end wakes the next waiter, one only', () => {
    const budget = new ByteBudget(100, { overdrafts: true });
    const first = {};
    const second = {};
    budget.charge(150);
    expect(budget.overdraw(first)).toBe(true);
    expect(budget.overdraw(first)).toBe(true);
    expect(budget.overdraw(second)).toBe(false);
    const woken: string[] = [];
    budget.wait(() => {
      woken.push('second');
      expect(budget.overdraw(second)).toBe(true);
    });
    budget.wait(() => woken.push('third'));
    // Giving bytes back while still spent wakes nobody: the overdraft is taken.
    budget.charge(-10);
    expect(woken).toEqual([]);
    budget.endOverdraft(first);
    expect(woken).toEqual(['second']);
    // Only the holder can end its overdraft.
    budget.endOverdraft(first);
    expect(woken).toEqual(['second']);
    // Back under the limit, everyone waiting goes on.
    budget.charge(-100);
    expect(woken).toEqual(['second', 'third']);
  });

  it('a waiter woken while spent that does not take the overdraft passes the turn to the next', () => {
    const budget = new ByteBudget(100, { overdrafts: true });
    const holder = {};
    budget.charge(150);
    budget.overdraw(holder);
    const woken: string[] = [];
    // The first waiter cannot go on (say its connection is held for another reason).
    budget.wait(() => woken.push('busy'));
    budget.wait(() => {
      woken.push('next');
      budget.overdraw(woken);
    });
    budget.wait(() => woken.push('last'));
    budget.endOverdraft(holder);
    expect(woken).toEqual(['busy', 'next']);
  });

  it('a waiter that needs room is woken only when its need fits, and keeps those behind it waiting', () => {
    const budget = new ByteBudget(100);
    budget.charge(90);
    const woken: string[] = [];
    budget.wait(() => woken.push('needs 40'), 40);
    budget.wait(() => woken.push('needs 1'), 1);
    budget.charge(-20);
    // 70 + 40 > 100: the first does not fit, and the small one behind it does not overtake.
    expect(woken).toEqual([]);
    budget.charge(-10);
    expect(woken).toEqual(['needs 40', 'needs 1']);
  });

  it('a withdrawn wait is never called', () => {
    const budget = new ByteBudget(10);
    budget.charge(20);
    let called = false;
    const withdraw = budget.wait(() => (called = true));
    withdraw();
    budget.charge(-20);
    expect(called).toBe(false);
  });
});
