import { createSecureContext, type SecureContextOptions } from 'node:tls';
import { invalidOption } from './validate.js';

/**
 * Refuses, naming the key and the file, PEM that would fail only later — when the server
 * listens (reported as a listen failure) or a consumer connects: a certificate or key file
 * that is no PEM (a path mixed up, cert and key swapped), a key that does not belong to the
 * certificate, a CA file with no certificate in it (which Node would take as trusting nothing).
 * `options` holds the values as given (paths or PEM text), for the error to name.
 */
export function checkPem(where: string, options: Record<string, unknown>, ca: Buffer | undefined, cert: Buffer | undefined, key: Buffer | undefined): void {
  // Inline PEM is never quoted: a private key would show its first bytes.
  const named = (name: string): unknown =>
    typeof options[name] === 'string' && (options[name] as string).includes('-----BEGIN') ? '(PEM text)' : options[name];
  if (ca !== undefined && !ca.includes('-----BEGIN CERTIFICATE-----')) {
    throw invalidOption(`${where}.ca`, named('ca'), 'PEM holding at least one certificate (-----BEGIN CERTIFICATE-----)');
  }
  const attempt = (name: string, material: SecureContextOptions, allowed: string): void => {
    try {
      createSecureContext(material);
    } catch (error) {
      throw invalidOption(`${where}.${name}`, named(name), `${allowed} (${(error as Error).message.replace(/^error:[0-9A-F]+:/, '')})`);
    }
  };
  if (cert !== undefined) attempt('cert', { cert }, 'a PEM certificate (-----BEGIN CERTIFICATE-----)');
  if (key !== undefined) attempt('key', { key }, 'an unencrypted PEM private key (-----BEGIN PRIVATE KEY-----)');
  if (cert !== undefined && key !== undefined) attempt('key', { cert, key }, `the private key of the certificate in ${where}.cert`);
}
