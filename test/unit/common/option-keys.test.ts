import { describe, expect, it } from 'vitest';
import { optionKeys } from '../../../src/common/validate.js';

interface Options {
  readonly name: string;
  readonly size?: number;
  readonly onEvent?: () => void;
}

/*
 * The checks themselves happen when this file is type-checked (`npm run typecheck`): each
 * `@ts-expect-error` below fails the type check if the line it covers ever compiles. The option
 * lists in src/ are compiled by `npm run build`, so a list that drifts from its interface fails
 * the build.
 */
describe('optionKeys', () => {
  it('returns the list it is given, in order', () => {
    const keys = optionKeys<Options>()(['size', 'name', 'onEvent']);
    expect(keys).toEqual(['size', 'name', 'onEvent']);
  });

  it('does not compile with a key the interface lacks or without one it has', () => {
    // @ts-expect-error 'colour' is not a key of Options
    const extra = optionKeys<Options>()(['name', 'size', 'onEvent', 'colour']);
    // @ts-expect-error 'onEvent' is missing
    const missing = optionKeys<Options>()(['name', 'size']);
    expect([extra.length, missing.length]).toEqual([4, 2]);
  });
});
