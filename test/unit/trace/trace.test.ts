import { describe, expect, it } from 'vitest';
import { childTraceParent, formatTraceParent, parseTraceParent } from '../../../src/trace/trace.js';

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const SPAN = '00f067aa0ba902b7';

describe('traceparent', () => {
  it('parses and formats the W3C example', () => {
    const value = `00-${TRACE}-${SPAN}-01`;
    expect(parseTraceParent(value)).toEqual({ traceId: TRACE, parentId: SPAN, flags: 1 });
    expect(formatTraceParent(parseTraceParent(value)!)).toBe(value);
  });

  it('accepts a later version with extra fields, keeping the known ones', () => {
    expect(parseTraceParent(`01-${TRACE}-${SPAN}-00-extra`)).toEqual({ traceId: TRACE, parentId: SPAN, flags: 0 });
  });

  it.each([
    ['version ff', `ff-${TRACE}-${SPAN}-01`],
    ['version 00 with a fifth field', `00-${TRACE}-${SPAN}-01-x`],
    ['an all-zero trace id', `00-${'0'.repeat(32)}-${SPAN}-01`],
    ['an all-zero span id', `00-${TRACE}-${'0'.repeat(16)}-01`],
    ['upper-case hex', `00-${TRACE.toUpperCase()}-${SPAN}-01`],
    ['a short trace id', `00-${TRACE.slice(1)}-${SPAN}-01`],
    ['garbage', 'not a traceparent'],
  ])('rejects %s', (_what, value) => {
    expect(parseTraceParent(value)).toBeUndefined();
  });

  it('a child keeps the trace and flags with a new span; without a parent a new sampled trace starts', () => {
    const parent = { traceId: TRACE, parentId: SPAN, flags: 0 };
    const child = childTraceParent(parent);
    expect([child.traceId, child.flags]).toEqual([TRACE, 0]);
    expect(child.parentId).toMatch(/^[0-9a-f]{16}$/);
    expect(child.parentId).not.toBe(SPAN);
    const root = childTraceParent(undefined);
    expect(root.traceId).toMatch(/^[0-9a-f]{32}$/);
    expect(root.traceId).not.toBe(childTraceParent(undefined).traceId);
    expect(root.flags).toBe(1);
    expect(parseTraceParent(formatTraceParent(root))).toEqual(root);
  });
});
