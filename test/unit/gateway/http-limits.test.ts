import { describe, expect, it } from 'vitest';
import { gatewayConnectionLimits, httpServerOptions } from '../../../src/gateway/http-limits.js';

describe('gateway http limits', () => {
  it('default to bounds that never cut a generation short, and pass through as Fastify and Node options', () => {
    expect(httpServerOptions(undefined, 600_000)).toEqual({
      requestTimeout: 60_000,
      connectionTimeout: 660_000,
      keepAliveTimeout: 72_000,
      maxRequestsPerSocket: 0,
      http: { headersTimeout: 10_000, connectionsCheckingInterval: 1000 },
    });
    expect(httpServerOptions({ headersTimeoutMs: 90_000, requestTimeoutMs: 30_000 }, 1000)).toMatchObject({
      requestTimeout: 30_000,
      http: { headersTimeout: 30_000 },
    });
  });

  it('name the bad key and what is allowed', () => {
    expect(() => httpServerOptions({ headerTimeoutMs: 1 }, 1000)).toThrow(
      /unknown option gateway http\.headerTimeoutMs \(known: headersTimeoutMs, requestTimeoutMs/,
    );
    expect(() => httpServerOptions({ requestTimeoutMs: 0 }, 1000)).toThrow(/invalid gateway http\.requestTimeoutMs: 0 \(allowed: an integer from 1 to/);
    expect(() => httpServerOptions('fast', 1000)).toThrow(/invalid gateway http: "fast"/);
  });
});

describe('the gateway connection limits', () => {
  it('default to 10,000 connections and 256 MiB of bodies arriving, and name a bad value', () => {
    expect(gatewayConnectionLimits(undefined)).toEqual({ maxConnections: 10_000, maxBufferedBodyBytes: 256 * 1024 * 1024 });
    expect(gatewayConnectionLimits({ maxConnections: 50, maxBufferedBodyBytes: 4096 })).toEqual({ maxConnections: 50, maxBufferedBodyBytes: 4096 });
    expect(() => gatewayConnectionLimits({ maxConnections: 0 })).toThrow(/invalid gateway http\.maxConnections: 0 \(allowed: an integer from 1 to/);
    expect(() => gatewayConnectionLimits({ maxBufferedBodyBytes: 10 })).toThrow(/invalid gateway http\.maxBufferedBodyBytes: 10/);
  });
});
