import { describe, expect, it } from 'vitest';
import { callPriority, PRIORITY_METADATA } from '../../../src/inference/inference.js';

describe('callPriority', () => {
  it('reads the digit the gateway puts in the call metadata', () => {
    expect(callPriority({ [PRIORITY_METADATA]: '5' })).toBe(5);
    expect(callPriority({ [PRIORITY_METADATA]: '0' })).toBe(0);
    expect(callPriority({ [PRIORITY_METADATA]: '9' })).toBe(9);
  });

  it('treats absent or malformed metadata from a peer as normal priority rather than failing the call', () => {
    for (const value of [undefined, '', '10', '-1', '5.0', ' 5', 'high', '٥']) {
      expect(callPriority(value === undefined ? {} : { [PRIORITY_METADATA]: value })).toBe(1);
    }
  });
});
