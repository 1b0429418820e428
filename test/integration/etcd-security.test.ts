import { Etcd3 } from 'etcd3';
import { afterAll, describe, expect, it } from 'vitest';
import { RpcCode, createClient, type RpcClient } from 'shuttle-rpc';
import type { EchoApi } from '../fixtures/services.js';
import { makeCertificates } from '../helpers/certs.js';
import { startEtcd, type EtcdServer } from '../helpers/etcd.js';
import { startFixture, type Child } from '../helpers/process.js';
import { runCliCaptured } from '../helpers/cli-run.js';
import { rejection } from '../helpers/wait.js';

/*
 * The etcd registry against a real etcd that speaks TLS, and one with authentication on: a
 * provider process announces itself, a consumer finds and calls it; the wrong CA, no TLS, a
 * wrong password fail with a clear cause, and the password is never printed.
 */
const etcds: EtcdServer[] = [];
const children: Child[] = [];
const clients: RpcClient[] = [];
afterAll(async () => {
  await Promise.all(clients.map((client) => client.close()));
  await Promise.all(children.map((child) => child.stop()));
  await Promise.all(etcds.map((etcd) => etcd.remove()));
});

async function consumer(registry: unknown): Promise<EchoApi> {
  const client = await createClient({ registry: registry as never, timeoutMs: 5000, config: false });
  clients.push(client);
  return client.proxy<EchoApi>('test.Echo', { version: '1.0.0' });
}

describe('etcd over TLS', () => {
  it('providers and consumers trusting the CA meet there; no TLS or the wrong CA fail with a clear cause', async () => {
    const certs = makeCertificates();
    const etcd = await startEtcd({ tlsDir: certs });
    etcds.push(etcd);
    children.push(await startFixture('provider', { SHUTTLE_REGISTRY: etcd.url, PROVIDER_ETCD_CA: `${certs}/ca.crt` }));
    const echo = await consumer({ type: 'etcd', options: { url: etcd.url, tls: { ca: `${certs}/ca.crt` } } });
    expect(await echo.add({ a: 1, b: 2 })).toEqual({ sum: 3 });

    const plain = await rejection((await consumer(etcd.url)).add({ a: 1, b: 2 }));
    expect(plain).toMatchObject({ code: RpcCode.UNAVAILABLE });
    expect(plain.message).toMatch(/cannot find providers of test\.Echo: etcd registry etcd:\/\/127\.0\.0\.1:\d+ is unreachable/);
    const wrongCa = await rejection(
      (await consumer({ type: 'etcd', options: { url: etcd.url, tls: { ca: `${certs}/other-ca.crt` }, requestTimeoutMs: 1500 } })).add({ a: 1, b: 2 }),
    );
    expect(wrongCa).toMatchObject({ code: RpcCode.UNAVAILABLE });
    expect(wrongCa.message).toMatch(/etcd registry etcd:\/\/127\.0\.0\.1:\d+ is unreachable/);
  });
});

describe('etcd with authentication', () => {
  it('a user and password in the URL let providers and consumers in; a wrong password is refused without being printed', async () => {
    const etcd = await startEtcd();
    etcds.push(etcd);
    const admin = new Etcd3({ hosts: etcd.endpoint });
    try {
      await admin.role('root').create();
      await admin.user('root').create('r00t-pw');
      await admin.user('root').addRole('root');
      await admin.auth.authEnable({});
    } finally {
      admin.close();
    }
    const withAuth = etcd.url.replace('etcd://', 'etcd://root:r00t-pw@');
    children.push(await startFixture('provider', { SHUTTLE_REGISTRY: withAuth }));
    expect(await (await consumer(withAuth)).add({ a: 2, b: 2 })).toEqual({ sum: 4 });
    // The command lists the fleet there; what it prints (a log may keep it) repeats no password.
    const listed = await runCliCaptured(['ls', '--json', '--registry', withAuth]);
    expect(listed.code).toBe(0);
    expect(listed.written).toContain('"registry": "etcd://***@');
    expect(listed.written).toContain('test.Echo');
    expect(listed.written).not.toContain('r00t-pw');

    const wrong = await rejection((await consumer(etcd.url.replace('etcd://', 'etcd://root:guess-pw@'))).add({ a: 1, b: 1 }));
    expect(wrong).toMatchObject({ code: RpcCode.UNAVAILABLE });
    expect(wrong.message).toMatch(/authentication failed|invalid user ID or password/i);
    expect(wrong.message).not.toContain('guess-pw');
    const none = await rejection((await consumer(etcd.url)).add({ a: 1, b: 1 }));
    expect(none).toMatchObject({ code: RpcCode.UNAVAILABLE });
  });
});
