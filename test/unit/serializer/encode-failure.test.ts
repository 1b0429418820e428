import { describe, expect, it } from 'vitest';
import { RpcCode } from '../../../src/errors/errors.js';
import { findCycle } from '../../../src/serializer/encode-failure.js';
import { createMsgpackSerializer } from '../../../src/serializer/msgpack.js';
import type { Serializer } from '../../../src/serializer/serializer.js';

describe('findCycle', () => {
  it('finds the first reference back to an ancestor, through arrays, objects and Maps', () => {
    const tree: { kids: unknown[] } = { kids: [] };
    tree.kids.push({ 'odd key': new Map([['up', tree]]) });
    expect(findCycle(tree, 'request')).toEqual({ path: 'request.kids[0]["odd key"].get("up")', to: 'request' });
  });

  it('does not call an object seen twice on separate branches a cycle', () => {
    const shared = { x: 1 };
    expect(findCycle({ a: shared, b: [shared, shared] }, 'request')).toBeUndefined();
  });

  it('walks a value nested deeper than the stack allows without overflowing', () => {
    let deep: unknown[] = [];
    const top = deep;
    for (let i = 0; i < 50_000; i++) {
      const next: unknown[] = [];
      deep.push(next);
      deep = next;
    }
    expect(findCycle(top, 'request')).toBeUndefined();
  });
});

describe('msgpack encode failures', () => {
  const msgpack = createMsgpackSerializer({}) as Serializer;

  it('a request that refers to itself is INVALID_ARGUMENT naming the method and path', () => {
    const value: Record<string, unknown> = {};
    value['me'] = value;
    expect(() => msgpack.encode(value, { service: 's.S', method: 'm', kind: 'request' })).toThrow(
      expect.objectContaining({
        code: RpcCode.INVALID_ARGUMENT,
        rawMessage: 'cannot encode the request of s.S.m as msgpack: request.me refers back to request (a circular reference; send a copy without it)',
      }),
    );
  });

  it('a response nested too deeply is INTERNAL saying so, at the decoder depth limit', () => {
    const value = JSON.parse(`${'['.repeat(20_000)}${']'.repeat(20_000)}`) as unknown;
    expect(() => msgpack.encode(value, { service: 's.S', method: 'm', kind: 'response' })).toThrow(
      expect.objectContaining({
        code: RpcCode.INTERNAL,
        rawMessage: `cannot encode the response of s.S.m as msgpack: response${'[0]'.repeat(64)} is nested deeper than 64 levels (decode limit maxDepth)`,
      }),
    );
    // Past a raised limit, msgpackr's own stack overflow is still told as nesting.
    const deep = createMsgpackSerializer({ maxDepth: 1_000_000 }) as Serializer;
    expect(() => deep.encode(value, { service: 's.S', method: 'm', kind: 'response' })).toThrow(
      expect.objectContaining({ code: RpcCode.INTERNAL, rawMessage: 'cannot encode the response of s.S.m as msgpack: the value is nested too deeply' }),
    );
  });
});
