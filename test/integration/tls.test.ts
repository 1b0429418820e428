import { readFileSync } from 'node:fs';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RpcCode, createClient, type RpcClient } from 'shuttle-rpc';
import type { EchoApi } from '../fixtures/services.js';
import { makeCertificates, renewServerCertificate } from '../helpers/certs.js';
import { startFixture, type Child } from '../helpers/process.js';
import { rejection, waitUntil } from '../helpers/wait.js';

/*
 * TLS and mutual TLS on the tcp transport, between processes: what works, what fails and with
 * which cause, and a certificate rotated on disk without dropping a call.
 */
let certs: string;
const clients: RpcClient[] = [];
const children: Child[] = [];

beforeAll(() => {
  certs = makeCertificates();
});
afterAll(async () => {
  await Promise.all(clients.map((client) => client.close()));
  await Promise.all(children.map((child) => child.stop()));
});

async function provider(env: Record<string, string>): Promise<Child> {
  const child = await startFixture('provider', env);
  children.push(child);
  return child;
}

async function echoOf(url: string, tlsOptions?: Record<string, string>): Promise<EchoApi> {
  const client = await createClient({
    registry: url,
    ...(tlsOptions === undefined ? {} : { transport: { type: 'tcp', options: { tls: tlsOptions } } }),
    timeoutMs: 5000,
    connectTimeoutMs: 2000,
    cluster: 'failfast',
    circuitBreaker: false,
    config: false,
  });
  clients.push(client);
  return client.proxy<EchoApi>('test.Echo', { version: '1.0.0' });
}

function serialSeenBy(port: number, dir: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, ca: readFileSync(`${dir}/ca.crt`) }, () => {
      resolve(socket.getPeerCertificate().serialNumber.toUpperCase());
      socket.end();
    });
    socket.on('error', reject);
  });
}

describe('tls on the tcp transport', () => {
  it('a client trusting the CA calls; plaintext, a wrong CA and TLS to a plaintext provider fail with their cause', async () => {
    const secure = await provider({ PROVIDER_TCP_TLS: certs });
    expect(await (await echoOf(secure.url, { ca: `${certs}/ca.crt` })).add({ a: 1, b: 2 })).toEqual({ sum: 3 });

    const plaintext = await rejection((await echoOf(secure.url)).add({ a: 1, b: 2 }));
    expect(plaintext).toMatchObject({ code: RpcCode.UNAVAILABLE });
    expect(plaintext.message).toMatch(
      /closed by the provider before it answered anything \(a provider that requires TLS closes plaintext connections this way\)/,
    );

    const wrongCa = await rejection((await echoOf(secure.url, { ca: `${certs}/other-ca.crt` })).add({ a: 1, b: 2 }));
    expect(wrongCa).toMatchObject({ code: RpcCode.UNAVAILABLE });
    expect(wrongCa.message).toMatch(
      /TLS with 127\.0\.0\.1:\d+ failed: unable to verify the first certificate \(is ca the CA that signed the provider's certificate\?\)/,
    );

    const plain = await provider({});
    const tlsToPlain = await rejection((await echoOf(plain.url, { ca: `${certs}/ca.crt` })).add({ a: 1, b: 2 }));
    expect(tlsToPlain).toMatchObject({ code: RpcCode.UNAVAILABLE });
    expect(tlsToPlain.message).toMatch(/TLS with 127\.0\.0\.1:\d+ failed: wrong version number \(does the provider serve TLS\?\)/);
  });

  it('mutual TLS: a client certificate signed by the CA is required', async () => {
    const secure = await provider({ PROVIDER_TCP_TLS: certs, PROVIDER_TCP_MTLS: '1' });
    const withCert = await echoOf(secure.url, { ca: `${certs}/ca.crt`, cert: `${certs}/client.crt`, key: `${certs}/client.key` });
    expect(await withCert.add({ a: 2, b: 3 })).toEqual({ sum: 5 });
    const withoutCert = await rejection((await echoOf(secure.url, { ca: `${certs}/ca.crt` })).add({ a: 1, b: 1 }));
    expect(withoutCert).toMatchObject({ code: RpcCode.UNAVAILABLE });
    expect(withoutCert.message).toMatch(
      /TLS with 127\.0\.0\.1:\d+ failed: .*certificate required \(the provider requires a client certificate: set cert and key\)/,
    );
  });

  it('a certificate rotated on disk is served to new connections; calls in flight are not dropped', async () => {
    const dir = makeCertificates();
    const secure = await provider({ PROVIDER_TCP_TLS: dir });
    const echo = await echoOf(secure.url, { ca: `${dir}/ca.crt` });
    const before = await serialSeenBy(secure.port, dir);
    const inFlight = echo.sleep({ ms: 2000 });
    await new Promise((resolve) => setTimeout(resolve, 100));
    const renewed = renewServerCertificate(dir);
    expect(renewed).not.toBe(before);
    // Each check opens a TLS connection: every 200 ms is often enough.
    await waitUntil(async () => (await serialSeenBy(secure.port, dir)) === renewed, 'new connections to be served the renewed certificate', 5000, 200);
    await expect(inFlight).resolves.toEqual({ aborted: false });
    expect(await echo.add({ a: 4, b: 4 })).toEqual({ sum: 8 });
  });
});
