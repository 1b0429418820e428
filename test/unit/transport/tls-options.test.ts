import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseEtcdOptions } from '../../../src/registry/etcd/options.js';
import { resolveTls } from '../../../src/transport/tls-options.js';
import { makeCertificates } from '../../helpers/certs.js';

/*
 * TLS files an operator got wrong are refused when the options are read, naming the key, the
 * file and what is wrong — not later, as a provider that "cannot listen" or a consumer whose
 * every connection fails.
 */
const dir = makeCertificates();
const file = (name: string): string => path.join(dir, name);
writeFileSync(file('notes.txt'), 'not a certificate\n');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('a tls option with files that are not what they should be', () => {
  it('takes a certificate, its key and a CA', () => {
    const tls = resolveTls('tcp transport tls', { cert: file('server.crt'), key: file('server.key'), ca: file('ca.crt') });
    expect(tls?.cert).toEqual(readFileSync(file('server.crt')));
  });

  it('refuses a certificate file that is no PEM', () => {
    expect(() => resolveTls('tcp transport tls', { cert: file('notes.txt'), key: file('server.key') })).toThrow(
      `shuttle-rpc: invalid tcp transport tls.cert: "${file('notes.txt')}" (allowed: a PEM certificate (-----BEGIN CERTIFICATE-----) (PEM routines::no start line))`,
    );
  });

  it('refuses cert and key swapped', () => {
    expect(() => resolveTls('tcp transport tls', { cert: file('server.key'), key: file('server.crt') })).toThrow(
      /invalid tcp transport tls\.cert: .*server\.key" \(allowed: a PEM certificate/,
    );
  });

  it("refuses a key that is not the certificate's", () => {
    expect(() => resolveTls('grpc transport tls', { cert: file('server.crt'), key: file('client.key') })).toThrow(
      /invalid grpc transport tls\.key: .*client\.key" \(allowed: the private key of the certificate in grpc transport tls\.cert \(.*key values mismatch\)\)/,
    );
  });

  it('refuses a CA file with no certificate in it', () => {
    expect(() => resolveTls('tcp transport tls', { ca: file('ca.key') })).toThrow(
      /invalid tcp transport tls\.ca: .*ca\.key" \(allowed: PEM holding at least one certificate/,
    );
  });

  it("checks the etcd registry's TLS files alike", () => {
    expect(() => parseEtcdOptions({ url: 'etcd://127.0.0.1:2379', tls: { ca: file('ca.key') } })).toThrow(
      /invalid etcd registry tls\.ca: .*ca\.key" \(allowed: PEM holding at least one certificate/,
    );
    expect(() => parseEtcdOptions({ url: 'etcd://127.0.0.1:2379', tls: { ca: file('ca.crt'), cert: file('client.crt'), key: file('server.key') } })).toThrow(
      /invalid etcd registry tls\.key: .*server\.key" \(allowed: the private key of the certificate in etcd registry tls\.cert/,
    );
  });

  it('never quotes inline PEM text, a private key least of all', () => {
    const key = readFileSync(file('client.key'), 'utf8');
    let message = '';
    try {
      resolveTls('tcp transport tls', { cert: readFileSync(file('server.crt'), 'utf8'), key });
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toMatch(/^shuttle-rpc: invalid tcp transport tls\.key: "\(PEM text\)" \(allowed: the private key of the certificate/);
    expect(message).not.toContain(key.split('\n')[1]!.slice(0, 20));
  });
});
