import { describe, expect, it } from 'vitest';
import { RpcCode, RpcError, codeConstant, codeName, isRpcCode } from '../../../src/errors/errors.js';

describe('RpcCode', () => {
  it('uses gRPC numbering', () => {
    expect([
      RpcCode.OK,
      RpcCode.CANCELLED,
      RpcCode.INVALID_ARGUMENT,
      RpcCode.DEADLINE_EXCEEDED,
      RpcCode.RESOURCE_EXHAUSTED,
      RpcCode.UNIMPLEMENTED,
      RpcCode.INTERNAL,
      RpcCode.UNAVAILABLE,
      RpcCode.UNAUTHENTICATED,
    ]).toEqual([0, 1, 3, 4, 8, 12, 13, 14, 16]);
    expect(codeName(RpcCode.DEADLINE_EXCEEDED)).toBe('deadline exceeded');
    expect(codeConstant(RpcCode.DEADLINE_EXCEEDED)).toBe('DEADLINE_EXCEEDED');
    expect(codeConstant(RpcCode.OK)).toBe('OK');
    expect(isRpcCode(16)).toBe(true);
    expect(isRpcCode(17)).toBe(false);
    expect(isRpcCode(1.5)).toBe(false);
  });
});

describe('RpcError', () => {
  it('prefixes the message with the code name and keeps the raw text', () => {
    const error = new RpcError(RpcCode.NOT_FOUND, 'no such model');
    expect(error.message).toBe('[not found] no such model');
    expect(error.rawMessage).toBe('no such model');
    expect(error).toBeInstanceOf(Error);
  });

  it('marks only codes where another attempt can help as retryable, unless overridden', () => {
    expect(new RpcError(RpcCode.UNAVAILABLE, 'x').retryable).toBe(true);
    expect(new RpcError(RpcCode.RESOURCE_EXHAUSTED, 'x').retryable).toBe(true);
    expect(new RpcError(RpcCode.INVALID_ARGUMENT, 'x').retryable).toBe(false);
    expect(new RpcError(RpcCode.INTERNAL, 'x').retryable).toBe(false);
    expect(new RpcError(RpcCode.INTERNAL, 'x', { retryable: true }).retryable).toBe(true);
  });

  it('maps Node socket errors found anywhere on the cause chain to UNAVAILABLE', () => {
    const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' });
    expect(RpcError.from(refused).code).toBe(RpcCode.UNAVAILABLE);
    const wrapped = new TypeError('fetch failed', { cause: new Error('socket', { cause: Object.assign(new Error('reset'), { code: 'ECONNRESET' }) }) });
    expect(RpcError.from(wrapped).code).toBe(RpcCode.UNAVAILABLE);
    expect(RpcError.from(wrapped).cause).toBe(wrapped);
  });

  it('survives a cause cycle', () => {
    const a: Error & { cause?: unknown } = new Error('a');
    const b = new Error('b', { cause: a });
    a.cause = b;
    expect(RpcError.from(a).code).toBe(RpcCode.UNKNOWN);
  });

  it('normalises anything thrown', () => {
    expect(RpcError.from('text').message).toBe('[unknown] text');
    const abort = new DOMException('The operation was aborted', 'AbortError');
    expect(RpcError.from(abort).code).toBe(RpcCode.CANCELLED);
    const same = new RpcError(RpcCode.ABORTED, 'x');
    expect(RpcError.from(same)).toBe(same);
    expect(RpcError.from(new Error('x'), RpcCode.INTERNAL).code).toBe(RpcCode.INTERNAL);
  });

  it('crosses the wire as plain data without stack or cause, and is rebuilt', () => {
    const error = new RpcError(RpcCode.RESOURCE_EXHAUSTED, 'all slots busy', { details: { slots: 8 }, retryAfterMs: 200, cause: new Error('inner') });
    const wire = JSON.parse(JSON.stringify(error.toWire())) as unknown;
    expect(wire).toEqual({ code: 8, message: 'all slots busy', details: { slots: 8 }, retryAfterMs: 200 });
    const rebuilt = RpcError.fromWire(wire);
    expect(rebuilt.message).toBe('[resource exhausted] all slots busy');
    expect(rebuilt.details).toEqual({ slots: 8 });
    expect(rebuilt.retryAfterMs).toBe(200);
  });

  it('rebuilds malformed wire errors as something sane', () => {
    expect(RpcError.fromWire(null).code).toBe(RpcCode.INTERNAL);
    expect(RpcError.fromWire({ code: 99, message: 5 }).message).toBe('[unknown] no message');
    expect(RpcError.fromWire({ code: 0, message: 'ok?' }).code).toBe(RpcCode.UNKNOWN);
    expect(RpcError.fromWire({ code: 3, message: 'm', details: [1], retryAfterMs: -1 })).toMatchObject({ details: undefined, retryAfterMs: undefined });
  });
});
