import net from 'node:net';
import grpc from '@grpc/grpc-js';
import { checkInt, checkKnownKeys, invalidOption, MAX_TIMER_MS, optionKeys } from '../../common/validate.js';
import { loadDescriptorSet, loadProtoFiles } from '../../serializer/protobuf.js';
import { checkServerTls, resolveTls, type TlsOptions } from '../tls-options.js';
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
  /**
   * The same as `protoFiles`, given as a serialized `google.protobuf.FileDescriptorSet` (what
   * `protoc --descriptor_set_out` writes, or what server reflection answers). Not with
   * `protoFiles`.
   */
  descriptorSet?: Uint8Array;
  /** TLS; plaintext (h2c) when absent. */
  tls?: GrpcTlsOptions;
  /**
   * Keepalive ping interval. Provider: ping each consumer this often (30 s by default) and close
   * the connections whose pings go unanswered for `keepaliveTimeoutMs` (20 s). Consumer: overrides `heartbeatIntervalMs`; servers in other languages refuse
   * pings more often than every 5 min by default, so set it when calling them.
   */
  keepaliveTimeMs?: number;
  /** How long a keepalive ping may go unanswered before the connection is closed. */
  keepaliveTimeoutMs?: number;
  /** Further grpc-js channel or server options (`grpc.*`), passed through as given. */
  channelOptions?: Readonly<Record<string, string | number>>;
}

/** TLS settings of the grpc transport (see {@link TlsOptions}). */
export type GrpcTlsOptions = TlsOptions;

/** Resolved transport options, shared by its servers and connections. */
export interface GrpcSettings {
  readonly routes: GrpcRoutes;
  /** The .proto files the routes come from (server reflection serves their descriptors). */
  readonly protoFiles: readonly string[];
  /** Or the descriptor set they come from. */
  readonly descriptorSet: Uint8Array | undefined;
  readonly keepaliveTimeMs: number | undefined;
  readonly keepaliveTimeoutMs: number | undefined;
  readonly channelOptions: Readonly<Record<string, string | number>>;
  readonly serverName: string | undefined;
  /** Whether connections use TLS. */
  readonly secure: boolean;
  serverCredentials(): grpc.ServerCredentials;
  channelCredentials(): grpc.ChannelCredentials;
}

const OPTION_KEYS = optionKeys<GrpcTransportOptions>()(['protoFiles', 'descriptorSet', 'tls', 'keepaliveTimeMs', 'keepaliveTimeoutMs', 'channelOptions']);

/** Checks the options (naming the bad key and what is allowed) and loads the .proto files. */
export function resolveGrpcSettings(options: Readonly<Record<string, unknown>>): GrpcSettings {
  checkKnownKeys('grpc transport options', options, OPTION_KEYS);
  const protoFiles = options['protoFiles'] === undefined ? [] : (options['protoFiles'] as string[]);
  const descriptorSet = options['descriptorSet'];
  if (descriptorSet !== undefined && !(descriptorSet instanceof Uint8Array)) {
    throw invalidOption('grpc transport descriptorSet', descriptorSet, 'the bytes of a google.protobuf.FileDescriptorSet (a Uint8Array)');
  }
  if (descriptorSet !== undefined && options['protoFiles'] !== undefined) {
    throw invalidOption('grpc transport descriptorSet', '<bytes>', 'either protoFiles or descriptorSet, not both');
  }
  const root =
    descriptorSet !== undefined
      ? loadDescriptorSet(descriptorSet, 'grpc transport descriptorSet')
      : options['protoFiles'] === undefined
        ? undefined
        : loadProtoFiles(options['protoFiles'], 'grpc transport protoFiles', false);
  const routes = new GrpcRoutes(root);
  const keepaliveTimeMs = checkInt('grpc transport keepaliveTimeMs', options['keepaliveTimeMs'], 1, MAX_TIMER_MS);
  const keepaliveTimeoutMs = checkInt('grpc transport keepaliveTimeoutMs', options['keepaliveTimeoutMs'], 1, MAX_TIMER_MS);
  const channelOptions = options['channelOptions'] ?? {};
  if (channelOptions === null || typeof channelOptions !== 'object' || Array.isArray(channelOptions)) {
    throw invalidOption('grpc transport channelOptions', channelOptions, 'an object of grpc-js options, e.g. { "grpc.max_send_message_length": 1048576 }');
  }
  for (const [key, value] of Object.entries(channelOptions)) {
    if (typeof value !== 'string' && typeof value !== 'number')
      throw invalidOption(`grpc transport channelOptions[${JSON.stringify(key)}]`, value, 'a string or a number');
  }
  const tls = resolveTls('grpc transport tls', options['tls']);
  return {
    routes,
    protoFiles,
    descriptorSet,
    keepaliveTimeMs,
    keepaliveTimeoutMs,
    channelOptions: channelOptions as Record<string, string | number>,
    serverName: tls?.serverName,
    secure: tls !== undefined,
    serverCredentials() {
      if (tls === undefined) return grpc.ServerCredentials.createInsecure();
      checkServerTls('grpc transport tls', tls);
      const [certFile, keyFile, caFile] = (['cert', 'key', 'ca'] as const).map((name) => tlsFile(options['tls'], name));
      if (certFile !== undefined && keyFile !== undefined && (tls.ca === undefined || caFile !== undefined)) {
        // Files: grpc-js watches them, so a certificate rotated on disk is served to new
        // connections without a restart (open ones keep theirs).
        const identity = new grpc.experimental.FileWatcherCertificateProvider({ certificateFile: certFile, privateKeyFile: keyFile, refreshIntervalMs: 1000 });
        const ca = caFile === undefined ? null : new grpc.experimental.FileWatcherCertificateProvider({ caCertificateFile: caFile, refreshIntervalMs: 1000 });
        // (grpc-js names this function's parameters the other way round; the identity comes first.)
        return grpc.experimental.createCertificateProviderServerCredentials(identity, ca, tls.requireClientCert);
      }
      return grpc.ServerCredentials.createSsl(tls.ca ?? null, [{ cert_chain: tls.cert!, private_key: tls.key! }], tls.requireClientCert);
    },
    channelCredentials() {
      if (tls === undefined) return grpc.credentials.createInsecure();
      return withoutIpServerName(grpc.credentials.createSsl(tls.ca ?? null, tls.key ?? null, tls.cert ?? null));
    },
  };
}

/** The part of grpc-js's secure connector this file touches (grpc-js channel-credentials.ts). */
interface SecureConnector {
  connectionOptions?: { servername?: string };
}

/**
 * grpc-js sets the TLS server name (SNI) to the host dialled even when it is an IP address,
 * which RFC 6066 forbids and Node answers with a DEP0123 warning on every connection. This
 * leaves SNI out for IP addresses; the certificate is still checked against the address (its
 * IP subjectAltName), as Node does with `host`. grpc-js offers no option for it, so the
 * credentials' connector factory (`_createSecureConnector`, grpc-js 1.14) is wrapped; should
 * grpc-js rename it, the credentials are used as they are and only the warning comes back.
 */
function withoutIpServerName(credentials: grpc.ChannelCredentials): grpc.ChannelCredentials {
  const internal = credentials as unknown as { _createSecureConnector?: (...args: unknown[]) => SecureConnector };
  const create = internal._createSecureConnector;
  if (typeof create !== 'function') return credentials;
  internal._createSecureConnector = function (this: unknown, ...args: unknown[]): SecureConnector {
    const connector = create.apply(this, args);
    const options = connector.connectionOptions;
    if (options?.servername !== undefined && net.isIP(options.servername) !== 0) delete options.servername;
    return connector;
  };
  return credentials;
}

/** The file path given for `name` in a tls option, or undefined when it is inline PEM text or absent. */
function tlsFile(tls: unknown, name: 'cert' | 'key' | 'ca'): string | undefined {
  const value = (tls as Record<string, unknown> | undefined)?.[name];
  return typeof value === 'string' && !value.includes('-----BEGIN') ? value : undefined;
}
