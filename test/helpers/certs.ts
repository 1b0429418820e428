import { execFileSync } from 'node:child_process';
import { mkdtempSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

/**
 * Makes a throw-away CA and, signed by it, a server certificate for 127.0.0.1/localhost and a
 * client certificate, with the openssl command (the test tools script installs it). Returns
 * the folder holding ca.crt, server.{crt,key} and client.{crt,key}; a second, unrelated CA is
 * in other-ca.crt for wrong-CA cases.
 */
export function makeCertificates(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'shuttle-certs-'));
  const openssl = (...args: string[]): void => {
    execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  };
  const selfSigned = (name: string, subject: string): void =>
    openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', subject, '-keyout', `${name}.key`, '-out', `${name}.crt`);
  selfSigned('ca', '/CN=shuttle test CA');
  selfSigned('other-ca', '/CN=unrelated CA');
  for (const [name, extensions] of [
    ['server', 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n'],
    ['client', 'extendedKeyUsage=clientAuth\n'],
  ] as const) {
    writeFileSync(path.join(dir, `${name}.ext`), extensions);
    openssl(
      'req',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-subj',
      `/CN=${name === 'server' ? 'localhost' : 'shuttle client'}`,
      '-keyout',
      `${name}.key`,
      '-out',
      `${name}.csr`,
    );
    openssl(
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      'ca.crt',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-days',
      '2',
      '-extfile',
      `${name}.ext`,
      '-out',
      `${name}.crt`,
    );
  }
  return dir;
}

/**
 * Replaces dir/server.crt and dir/server.key with a new pair signed by the same CA (what a
 * certificate rotation does on disk); returns the new certificate's serial number.
 */
export function renewServerCertificate(dir: string): string {
  const openssl = (...args: string[]): string => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] }).toString();
  openssl('req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost', '-keyout', 'renewed.key', '-out', 'renewed.csr');
  openssl(
    'x509',
    '-req',
    '-in',
    'renewed.csr',
    '-CA',
    'ca.crt',
    '-CAkey',
    'ca.key',
    '-CAcreateserial',
    '-days',
    '2',
    '-extfile',
    'server.ext',
    '-out',
    'renewed.crt',
  );
  // Key first, then certificate, each renamed into place whole.
  renameSync(path.join(dir, 'renewed.key'), path.join(dir, 'server.key'));
  renameSync(path.join(dir, 'renewed.crt'), path.join(dir, 'server.crt'));
  return openssl('x509', '-in', 'server.crt', '-noout', '-serial')
    .trim()
    .replace(/^serial=/, '');
}
