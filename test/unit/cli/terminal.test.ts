import { describe, expect, it } from 'vitest';
import { terminalSafe } from '../../../src/cli/terminal.js';

describe('terminal output', () => {
  it('shows escape sequences, controls and bidirectional overrides from registry text as \\u escapes, keeping newlines and tabs', () => {
    const planted = 'svc\u001b]52;c;ZXZpbA==\u0007\u001b[2J\u009b31m\u202egnp.exe\u2066x\u0000\u007f';
    expect(terminalSafe(planted)).toBe('svc\\u001b]52;c;ZXZpbA==\\u0007\\u001b[2J\\u009b31m\\u202egnp.exe\\u2066x\\u0000\\u007f');
    expect(terminalSafe('a\tb\nc é 中')).toBe('a\tb\nc é 中');
  });
});
