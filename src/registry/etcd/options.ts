import { readFileSync } from 'node:fs';
import { checkPem } from '../../common/pem-check.js';
import { checkInt, checkKnownKeys, invalidOption, withoutCredentials } from '../../common/validate.js';
import type { ExtensionOptions } from '../../common/extension-registry.js';

/** Settings of the etcd registry, from its URL and options. */
export interface EtcdSettings {
  /** `http(s)://host:port` endpoints for the etcd3 client. */
  readonly hosts: string[];
  /** The URL without credentials, for messages. */
  readonly display: string;
  /** Key prefix; `/shuttle` by default. */
  readonly prefix: string;
  /** Lease TTL in seconds; 10 by default. The lease is kept alive every TTL/3. */
  readonly ttlSeconds: number;
  /** Shortest interval between two load writes of one provider; 500 ms by default. */
  readonly loadIntervalMs: number;
  /** Deadline of each etcd request (not of watches); 3 s by default. */
  readonly requestTimeoutMs: number;
  readonly auth: { username: string; password: string } | undefined;
  readonly tls: { rootCertificate: Buffer; privateKey?: Buffer; certChain?: Buffer } | undefined;
}

const KEYS = ['url', 'prefix', 'ttlSeconds', 'loadIntervalMs', 'requestTimeoutMs', 'username', 'password', 'tls'];

/**
 * Parses `etcd://[user:password@]host:port[,host:port][/prefix]` plus options
 * `{ prefix, ttlSeconds, loadIntervalMs, requestTimeoutMs, username, password,
 * tls: { ca, cert?, key? } }` (tls paths are read from local files; with tls the client
 * speaks https). Throws naming the bad key.
 */
export function parseEtcdOptions(options: ExtensionOptions): EtcdSettings {
  checkKnownKeys('etcd registry options', options, KEYS);
  const url = options['url'];
  const match = typeof url === 'string' ? /^etcd:\/\/(?:([^:@/]+):([^@/]*)@)?([^/?#@]+)(\/[^?#]*)?$/.exec(url) : null;
  if (match === null) {
    throw invalidOption('registry', typeof url === 'string' ? withoutCredentials(url) : url, 'etcd://[user:password@]host:port[,host:port][/prefix]');
  }
  const [, urlUser, urlPassword, hostList, urlPrefix] = match;
  const addresses = hostList!.split(',').map((part) => {
    const address = /^(?:\[[0-9a-fA-F:.]+\]|[^:[\]]+):(\d{1,5})$/.exec(part.trim());
    if (address === null || Number(address[1]) < 1 || Number(address[1]) > 65535) {
      throw invalidOption('etcd registry address', part, 'host:port with a port from 1 to 65535');
    }
    return part.trim();
  });
  const tls = parseTls(options['tls']);
  const scheme = tls === undefined ? 'http' : 'https';
  const username = (options['username'] as string | undefined) ?? (urlUser === undefined ? undefined : decodeURIComponent(urlUser));
  const password = (options['password'] as string | undefined) ?? (urlPassword === undefined ? undefined : decodeURIComponent(urlPassword));
  if ((username === undefined) !== (password === undefined) || (username !== undefined && (typeof username !== 'string' || typeof password !== 'string'))) {
    throw invalidOption(
      'etcd registry username/password',
      username === undefined ? 'password only' : 'username only',
      'both a username and a password, as strings',
    );
  }
  const prefix = (options['prefix'] as string | undefined) ?? (urlPrefix && urlPrefix !== '/' ? urlPrefix : '/shuttle');
  if (typeof prefix !== 'string' || !/^\/[^\s]*[^/\s]$|^\/[^/\s]$/.test(prefix)) {
    throw invalidOption('etcd registry prefix', prefix, 'a key prefix starting with "/" and not ending with "/", e.g. /shuttle');
  }
  return {
    hosts: addresses.map((address) => `${scheme}://${address}`),
    display: `etcd://${addresses.join(',')}${prefix === '/shuttle' ? '' : prefix}`,
    prefix,
    ttlSeconds: checkInt('etcd registry ttlSeconds', options['ttlSeconds'], 2, 3600, 10),
    loadIntervalMs: checkInt('etcd registry loadIntervalMs', options['loadIntervalMs'], 50, 60_000, 500),
    requestTimeoutMs: checkInt('etcd registry requestTimeoutMs', options['requestTimeoutMs'], 100, 120_000, 3000),
    auth: username === undefined ? undefined : { username, password: password! },
    tls,
  };
}

function parseTls(value: unknown): EtcdSettings['tls'] {
  if (value === undefined) return undefined;
  if (value === null || typeof value !== 'object') throw invalidOption('etcd registry tls', value, '{ ca, cert?, key? } with local file paths');
  checkKnownKeys('etcd registry tls', value, ['ca', 'cert', 'key']);
  const { ca, cert, key } = value as Record<string, unknown>;
  const read = (name: string, path: unknown): Buffer => {
    if (typeof path !== 'string') throw invalidOption(`etcd registry tls.${name}`, path, 'a local file path');
    try {
      return readFileSync(path);
    } catch (error) {
      throw invalidOption(`etcd registry tls.${name}`, path, `a readable file (${(error as Error).message})`);
    }
  };
  if ((cert === undefined) !== (key === undefined)) throw invalidOption('etcd registry tls', 'cert without key', 'both cert and key, or neither');
  const rootCertificate = read('ca', ca);
  const pair = cert === undefined ? undefined : { certChain: read('cert', cert), privateKey: read('key', key) };
  checkPem('etcd registry tls', value as Record<string, unknown>, rootCertificate, pair?.certChain, pair?.privateKey);
  return { rootCertificate, ...pair };
}
