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
  const selfSigned = (name: string, subject: string): void => {
    openssl(dir, 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', subject, '-keyout', `${name}.key`, '-out', `${name}.crt`);
  };
  selfSigned('ca', '/CN=shuttle test CA');
  selfSigned('other-ca', '/CN=unrelated CA');
  writeFileSync(path.join(dir, 'server.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
  writeFileSync(path.join(dir, 'client.ext'), 'extendedKeyUsage=clientAuth\n');
  signedByCa(dir, 'server', '/CN=localhost', 'server.ext');
  signedByCa(dir, 'client', '/CN=shuttle client', 'client.ext');
  return dir;
}

/** Runs openssl in `dir`; returns what it prints. */
function openssl(dir: string, ...args: string[]): string {
  return execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] }).toString();
}

/** Makes dir/`name`.key and dir/`name`.crt for `subject`, signed by dir/ca, with the extensions in dir/`extFile`. */
function signedByCa(dir: string, name: string, subject: string, extFile: string): void {
  openssl(dir, 'req', '-newkey', 'rsa:2048', '-nodes', '-subj', subject, '-keyout', `${name}.key`, '-out', `${name}.csr`);
  openssl(
    dir,
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
    extFile,
    '-out',
    `${name}.crt`,
  );
}

/**
 * Replaces dir/server.crt and dir/server.key with a new pair signed by the same CA (what a
 * certificate rotation does on disk); returns the new certificate's serial number.
 */
export function renewServerCertificate(dir: string): string {
  signedByCa(dir, 'renewed', '/CN=localhost', 'server.ext');
  // Key first, then certificate, each renamed into place whole.
  renameSync(path.join(dir, 'renewed.key'), path.join(dir, 'server.key'));
  renameSync(path.join(dir, 'renewed.crt'), path.join(dir, 'server.crt'));
  return openssl(dir, 'x509', '-in', 'server.crt', '-noout', '-serial')
    .trim()
    .replace(/^serial=/, '');
}
