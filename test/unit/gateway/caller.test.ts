import type { FastifyRequest } from 'fastify';
import { describe, expect, it } from 'vitest';
import { callerOf } from '../../../src/gateway/caller.js';

const request = (headers: Record<string, string>): FastifyRequest => ({ headers, ip: '10.0.0.1' }) as unknown as FastifyRequest;
const keys = new Map([['sk-gold-secret', 'gold']]);

describe('the caller of a gateway request', () => {
  it('is the tenant of its API key, which a header cannot override', () => {
    expect(callerOf(request({ authorization: 'Bearer sk-gold-secret', 'x-tenant-id': 'other' }), keys).tenant).toBe('gold');
  });

  it('cannot claim a tenant that belongs to an API key without the key: 401', () => {
    expect(() => callerOf(request({ 'x-tenant-id': 'gold' }), keys)).toThrow(/tenant "gold" is reached with its API key/);
    expect(() => callerOf(request({ authorization: 'Bearer wrong', 'x-tenant-id': 'gold' }), keys)).toThrow(/reached with its API key/);
  });

  it('is the header’s tenant for one no key names, else the remote address', () => {
    expect(callerOf(request({ 'x-tenant-id': 'silver' }), keys).tenant).toBe('silver');
    expect(callerOf(request({}), keys).tenant).toBe('ip:10.0.0.1');
    expect(callerOf(request({ 'x-tenant-id': 'gold' }), new Map()).tenant).toBe('gold');
  });

  it("cannot claim the tenant the gateway gives another client's address: ip:… in the header is a 400", () => {
    expect(() => callerOf(request({ 'x-tenant-id': 'ip:10.0.0.5' }), keys)).toThrow(/the x-tenant-id header may not start with ip:/);
    expect(callerOf(request({ 'x-tenant-id': 'vip:1' }), keys).tenant).toBe('vip:1');
  });
});
