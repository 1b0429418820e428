import { readFileSync } from 'node:fs';
import { checkBool, checkKnownKeys, invalidOption, optionKeys } from '../common/validate.js';
import { checkPem } from '../common/pem-check.js';

/**
 * TLS settings of a transport (`options.tls` of tcp and grpc). Each of `ca`, `cert`, `key` is
 * PEM text or the path of a PEM file. Provider: `cert` and `key` are required; with
 * `requireClientCert`, clients must present a certificate signed by `ca` (mutual TLS).
 * Consumer: `ca` verifies the provider (the system roots when absent); `cert` and `key` are
 * its own certificate for mutual TLS; `serverName` is the name to verify when not the host.
 */
export interface TlsOptions {
  ca?: string;
  cert?: string;
  key?: string;
  requireClientCert?: boolean;
  serverName?: string;
}

/** TLS settings checked and read: PEM bytes, and the files they came from (for reloading). */
export interface ResolvedTls {
  readonly ca: Buffer | undefined;
  readonly cert: Buffer | undefined;
  readonly key: Buffer | undefined;
  readonly requireClientCert: boolean;
  readonly serverName: string | undefined;
  /** The PEM files among ca, cert and key (not inline PEM text). */
  readonly files: readonly string[];
  /** Reads the files again (for a certificate rotated on disk). */
  reread(): ResolvedTls;
}

const TLS_KEYS = optionKeys<TlsOptions>()(['ca', 'cert', 'key', 'requireClientCert', 'serverName']);

/** Checks a `tls` option (naming `where` and the bad key) and reads its PEM files. */
export function resolveTls(where: string, value: unknown): ResolvedTls | undefined {
  if (value === undefined) return undefined;
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw invalidOption(where, value, `an object with ${TLS_KEYS.join(', ')}`);
  const options = value as Record<string, unknown>;
  checkKnownKeys(where, options, TLS_KEYS);
  const serverName = options['serverName'];
  if (serverName !== undefined && (typeof serverName !== 'string' || serverName === '')) throw invalidOption(`${where}.serverName`, serverName, 'a host name');
  const requireClientCert = checkBool(`${where}.requireClientCert`, options['requireClientCert'], false);
  const read = (): ResolvedTls => {
    const [ca, cert, key] = (['ca', 'cert', 'key'] as const).map((name) => readPem(`${where}.${name}`, options[name]));
    if ((cert === undefined) !== (key === undefined)) throw invalidOption(where, Object.keys(options).join(', '), 'cert and key together (or neither)');
    checkPem(where, options, ca, cert, key);
    return {
      ca,
      cert,
      key,
      requireClientCert,
      serverName: serverName as string | undefined,
      files: (['ca', 'cert', 'key'] as const)
        .map((name) => options[name])
        .filter((entry): entry is string => typeof entry === 'string' && !entry.includes('-----BEGIN')),
      reread: read,
    };
  };
  return read();
}

/** A provider's TLS must have its certificate; mutual TLS must have the CA of its clients. */
export function checkServerTls(where: string, tls: ResolvedTls): void {
  if (tls.cert === undefined || tls.key === undefined) throw invalidOption(where, 'no cert/key', 'a provider with tls needs cert and key');
  if (tls.requireClientCert && tls.ca === undefined)
    throw invalidOption(`${where}.ca`, undefined, 'the CA that signs client certificates, required with requireClientCert');
}

/** PEM text as given, or read from the file it names. */
function readPem(key: string, value: unknown): Buffer | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || value === '') throw invalidOption(key, value, 'PEM text or the path of a PEM file');
  if (value.includes('-----BEGIN')) return Buffer.from(value, 'utf8');
  try {
    return readFileSync(value);
  } catch (error) {
    throw invalidOption(key, value, `a readable PEM file (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
  }
}
