import { readFileSync } from 'node:fs';
import grpc from '@grpc/grpc-js';
import { checkBool, checkInt, checkKnownKeys, invalidOption, MAX_TIMER_MS } from '../../common/validate.js';
import { loadProtoFiles } from '../../serializer/protobuf.js';
import { GrpcRoutes } from './codec.js';

/** Options of the `grpc` transport (`{ type: 'grpc', options }`); every key is optional. */
export interface GrpcTransportOptions {
  /**
   * Local .proto files. A service they declare is served and called exactly as declared
   * (protobuf bodies, the .proto's rpc names), so any gRPC client built from them can call it;
   * other services use the generic envelope (docs/PROTOCOL.md). Field names are
   * lowerCamelCase in JavaScript (`max_tokens` -> `maxTokens`), as with @grpc/proto-loader.
   */
  protoFiles?: readonly string[];
  /** TLS; plaintext (h2c) when absent. */
  tls?: GrpcTlsOptions;
  /**
   * Keepalive ping interval. Provider: ping idle consumers this often (gRPC's 2 h default
   * otherwise). Consumer: overrides `heartbeatIntervalMs`; servers in other languages refuse
   * pings more often than every 5 min by default, so set it when calling them.
   */
  keepaliveTimeMs?: number;
  /** How long a keepalive ping may go unanswered before the connection is closed. */
  keepaliveTimeoutMs?: number;
  /** Further grpc-js channel or server options (`grpc.*`), passed through as given. */
  channelOptions?: Readonly<Record<string, string | number>>;
}

/**
 * TLS settings. Each of `ca`, `cert`, `key` is PEM text or the path of a PEM file.
 * Provider: `cert` and `key` are required; with `requireClientCert`, clients must present a
 * certificate signed by `ca` (mutual TLS). Consumer: `ca` verifies the provider (the system
 * roots when absent); `cert` and `key` are its own certificate for mutual TLS.
 */
export interface GrpcTlsOptions {
  ca?: string;
  cert?: string;
  key?: string;
  requireClientCert?: boolean;
  /** Consumer: the name to verify the provider's certificate against, when not its host. */
  serverName?: string;
}

/** Resolved transport options, shared by its servers and connections. */
export interface GrpcSettings {
  readonly routes: GrpcRoutes;
  readonly keepaliveTimeMs: number | undefined;
  readonly keepaliveTimeoutMs: number | undefined;
  readonly channelOptions: Readonly<Record<string, string | number>>;
  readonly serverName: string | undefined;
  serverCredentials(): grpc.ServerCredentials;
  channelCredentials(): grpc.ChannelCredentials;
}

const OPTION_KEYS = ['protoFiles', 'tls', 'keepaliveTimeMs', 'keepaliveTimeoutMs', 'channelOptions'];
const TLS_KEYS = ['ca', 'cert', 'key', 'requireClientCert', 'serverName'];

/** Checks the options (naming the bad key and what is allowed) and loads the .proto files. */
export function resolveGrpcSettings(options: Readonly<Record<string, unknown>>): GrpcSettings {
  checkKnownKeys('grpc transport options', options, OPTION_KEYS);
  const routes = new GrpcRoutes(options['protoFiles'] === undefined ? undefined : loadProtoFiles(options['protoFiles'], 'grpc transport protoFiles', false));
  const keepaliveTimeMs = checkInt('grpc transport keepaliveTimeMs', options['keepaliveTimeMs'], 1, MAX_TIMER_MS);
  const keepaliveTimeoutMs = checkInt('grpc transport keepaliveTimeoutMs', options['keepaliveTimeoutMs'], 1, MAX_TIMER_MS);
  const channelOptions = options['channelOptions'] ?? {};
  if (channelOptions === null || typeof channelOptions !== 'object' || Array.isArray(channelOptions)) {
    throw invalidOption('grpc transport channelOptions', channelOptions, 'an object of grpc-js options, e.g. { "grpc.max_send_message_length": 1048576 }');
  }
  for (const [key, value] of Object.entries(channelOptions)) {
    if (typeof value !== 'string' && typeof value !== 'number') throw invalidOption(`grpc transport channelOptions[${JSON.stringify(key)}]`, value, 'a string or a number');
  }
  const tls = options['tls'];
  if (tls !== undefined && (tls === null || typeof tls !== 'object' || Array.isArray(tls))) {
    throw invalidOption('grpc transport tls', tls, 'an object with ca, cert, key, requireClientCert, serverName');
  }
  const tlsOptions = (tls ?? {}) as Record<string, unknown>;
  checkKnownKeys('grpc transport tls', tlsOptions, TLS_KEYS);
  const pem = (key: 'ca' | 'cert' | 'key'): Buffer | undefined => readPem(`grpc transport tls.${key}`, tlsOptions[key]);
  const serverName = tlsOptions['serverName'];
  if (serverName !== undefined && (typeof serverName !== 'string' || serverName === '')) throw invalidOption('grpc transport tls.serverName', serverName, 'a host name');
  const requireClientCert = checkBool('grpc transport tls.requireClientCert', tlsOptions['requireClientCert'], false);
  const [ca, cert, key] = [pem('ca'), pem('cert'), pem('key')];
  if ((cert === undefined) !== (key === undefined)) throw invalidOption('grpc transport tls', Object.keys(tlsOptions).join(', '), 'cert and key together (or neither)');

  return {
    routes,
    keepaliveTimeMs,
    keepaliveTimeoutMs,
    channelOptions: channelOptions as Record<string, string | number>,
    serverName: serverName as string | undefined,
    serverCredentials() {
      if (tls === undefined) return grpc.ServerCredentials.createInsecure();
      if (cert === undefined || key === undefined) throw invalidOption('grpc transport tls', 'no cert/key', 'a provider with tls needs cert and key');
      if (requireClientCert && ca === undefined) throw invalidOption('grpc transport tls.ca', undefined, 'the CA that signs client certificates, required with requireClientCert');
      return grpc.ServerCredentials.createSsl(ca ?? null, [{ cert_chain: cert, private_key: key }], requireClientCert);
    },
    channelCredentials() {
      if (tls === undefined) return grpc.credentials.createInsecure();
      return grpc.credentials.createSsl(ca ?? null, key ?? null, cert ?? null);
    },
  };
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
