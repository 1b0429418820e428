import { isIP } from 'node:net';
import { show } from '../common/validate.js';
import { isCacheSummary, type Endpoint, type LoadSnapshot, type MethodDescriptor, type ServiceInstance } from './instance.js';

/*
 * The rules a service record and a load snapshot obey, applied both when a provider registers
 * and when a consumer reads one back: anyone who can write to the registry can write anything,
 * so a record is believed only once it passes the same checks a well-behaved provider's did.
 * Values out of range are refused, never clamped: a clamped weight of 1e308 would still take
 * every call, a clamped port 70000 would send them to a stranger.
 */

/** Limits on what one record may hold; a record past them is refused whole. */
export const RECORD_LIMITS = {
  /** Bytes of one record's JSON, checked before it is parsed. */
  recordBytes: 64 * 1024,
  /**
   * Bytes of one load snapshot's JSON, checked before it is parsed: room for the largest
   * prefix-cache summary (MAX_CACHE_SUMMARY hashes below 2^30, 11 bytes each with the comma,
   * about 22 KiB) and the figures, so a provider's own snapshot is never refused by its readers.
   */
  loadBytes: 32 * 1024,
  /** Bytes of the record's `metadata` as JSON. */
  metadataBytes: 16 * 1024,
  /** Levels of nesting in `metadata` (the object itself is the first). */
  metadataDepth: 32,
  methods: 1000,
  serializers: 16,
  endpoints: 8,
  /** Bytes of a service, method or host name. */
  nameBytes: 255,
  /** Bytes of a version, group, protocol or serializer name. */
  tagBytes: 64,
  weight: { min: 1, max: 10_000 },
} as const;

/** A host name or an IPv4/IPv6 address: letters, digits, `.`, `-`, `:` (IPv6), optional brackets. */
const HOST = /^(?:\[[0-9A-Fa-f:.]+\]|[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*|[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?)$/;
/** A transport name as extensions are named. */
const PROTOCOL = /^[a-z][a-z0-9+._-]*$/;

/**
 * Checks a service record from a registry (or about to be written to one): returns it, without
 * any `load` field, or the reason it is refused (`field: what is wrong`).
 */
export function checkInstance(value: unknown): ServiceInstance | string {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return 'not a JSON object';
  const record = value as Record<string, unknown>;
  const problem =
    name(record, 'service', RECORD_LIMITS.nameBytes, false) ??
    name(record, 'version', RECORD_LIMITS.tagBytes, true) ??
    name(record, 'group', RECORD_LIMITS.tagBytes, true) ??
    host(record['host']) ??
    port('port', record['port']) ??
    (typeof record['protocol'] === 'string' &&
    (record['protocol'] === '*' || (PROTOCOL.test(record['protocol']) && record['protocol'].length <= RECORD_LIMITS.tagBytes))
      ? undefined
      : `protocol: ${show(record['protocol'])} is not a transport name`) ??
    weight(record['weight']) ??
    (typeof record['startTime'] === 'number' && Number.isFinite(record['startTime'])
      ? undefined
      : `startTime: ${show(record['startTime'])} is not a finite number`) ??
    (record['maxConcurrentCalls'] === undefined || (Number.isInteger(record['maxConcurrentCalls']) && (record['maxConcurrentCalls'] as number) >= 1)
      ? undefined
      : `maxConcurrentCalls: ${show(record['maxConcurrentCalls'])} is not a positive integer`) ??
    list(
      record['serializers'],
      'serializers',
      RECORD_LIMITS.serializers,
      (entry) => typeof entry === 'string' && entry.length > 0 && entry.length <= RECORD_LIMITS.tagBytes,
    ) ??
    list(record['methods'], 'methods', RECORD_LIMITS.methods, isMethod) ??
    (record['endpoints'] === undefined ? undefined : list(record['endpoints'], 'endpoints', RECORD_LIMITS.endpoints, isEndpoint)) ??
    metadata(record['metadata']);
  if (problem !== undefined) return problem;
  // Known fields only: anything else a writer put in the record (a field nested 30,000 deep)
  // would reach every reader, and code that walks values recursively, untouched.
  const instance: Record<string, unknown> = {};
  for (const key of INSTANCE_FIELDS) if (record[key] !== undefined) instance[key] = record[key];
  return instance as unknown as ServiceInstance;
}

/** The fields of a service record (the load travels apart). */
const INSTANCE_FIELDS = [
  'service',
  'version',
  'group',
  'host',
  'port',
  'protocol',
  'endpoints',
  'serializers',
  'methods',
  'weight',
  'startTime',
  'maxConcurrentCalls',
  'metadata',
] as const satisfies ReadonlyArray<Exclude<keyof ServiceInstance, 'load'>>;

/** Checks a load snapshot: returns it (known fields only) or the reason it is refused. */
export function checkLoad(value: unknown): LoadSnapshot | string {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return 'not a JSON object';
  const load = value as Record<string, unknown>;
  for (const key of ['timestamp', 'running', 'waiting', 'waitingUncachedTokens', 'kvUsage', 'tokensPerSecond']) {
    const figure = load[key];
    if (typeof figure !== 'number' || !Number.isFinite(figure) || figure < 0) return `${key}: ${show(figure)} is not a finite number >= 0`;
  }
  if (typeof load['draining'] !== 'boolean') return `draining: ${show(load['draining'])} is not a boolean`;
  const rate = load['cacheHitRate'];
  if (rate !== undefined && (typeof rate !== 'number' || !(rate >= 0 && rate <= 1))) return `cacheHitRate: ${show(rate)} is not a number from 0 to 1`;
  const snapshot: LoadSnapshot = {
    timestamp: load['timestamp'] as number,
    running: load['running'] as number,
    waiting: load['waiting'] as number,
    waitingUncachedTokens: load['waitingUncachedTokens'] as number,
    kvUsage: load['kvUsage'] as number,
    tokensPerSecond: load['tokensPerSecond'] as number,
    draining: load['draining'] as boolean,
  };
  // The cache summary is optional: a malformed one is dropped, not the snapshot.
  const summary = isCacheSummary(load['cachedPrefixes']) ? { cachedPrefixes: load['cachedPrefixes'] } : {};
  return rate === undefined ? { ...snapshot, ...summary } : { ...snapshot, cacheHitRate: rate as number, ...summary };
}

/** Checks a service record read from a registry; returns it, or undefined when refused. */
export function parseInstance(value: unknown): ServiceInstance | undefined {
  const checked = checkInstance(value);
  return typeof checked === 'string' ? undefined : checked;
}

/** Checks a load snapshot from the wire or a file; returns it, or undefined when refused. */
export function parseLoad(value: unknown): LoadSnapshot | undefined {
  const checked = checkLoad(value);
  return typeof checked === 'string' ? undefined : checked;
}

function name(record: Record<string, unknown>, key: string, max: number, emptyAllowed: boolean): string | undefined {
  const value = record[key];
  if (typeof value !== 'string' || (!emptyAllowed && value.length === 0) || Buffer.byteLength(value) > max) {
    return `${key}: ${show(value)} is not a ${emptyAllowed ? '' : 'non-empty '}string of at most ${max} bytes`;
  }
  return undefined;
}

function host(value: unknown): string | undefined {
  if (typeof value !== 'string' || value.length > 253 || !HOST.test(value)) return `host: ${show(value)} is not a host name or IP address`;
  const kind = uncallable(value.startsWith('[') ? value.slice(1, -1) : value);
  return kind === undefined ? undefined : `host: ${show(value)} is ${kind}, not an address a provider can be called at`;
}

/**
 * What kind of address `ip` is when no provider can be called at it, else undefined (host names
 * too). The unspecified address (0.0.0.0, ::) is what a provider listens on, never where it is:
 * a connect to it reaches the consumer's own host, any port of it. Multicast and broadcast
 * addresses take no TCP connection.
 */
function uncallable(ip: string): string | undefined {
  const version = isIP(ip);
  if (version === 4) {
    const first = Number(ip.slice(0, ip.indexOf('.')));
    if (ip === '0.0.0.0') return 'the unspecified address';
    if (ip === '255.255.255.255') return 'the broadcast address';
    if (first >= 224 && first <= 239) return 'a multicast address';
  } else if (version === 6) {
    const lower = ip.toLowerCase();
    if (/^[0:]+$/.test(lower)) return 'the unspecified address';
    if (lower.startsWith('ff')) return 'a multicast address';
  }
  return undefined;
}

function port(key: string, value: unknown): string | undefined {
  return Number.isInteger(value) && (value as number) >= 1 && (value as number) <= 65535 ? undefined : `${key}: ${show(value)} is not a port from 1 to 65535`;
}

function weight(value: unknown): string | undefined {
  const { min, max } = RECORD_LIMITS.weight;
  return typeof value === 'number' && Number.isFinite(value) && value >= min && value <= max
    ? undefined
    : `weight: ${show(value)} is not a number from ${min} to ${max}`;
}

function list(value: unknown, key: string, max: number, valid: (entry: unknown) => boolean): string | undefined {
  if (!Array.isArray(value)) return `${key}: ${show(value)} is not an array`;
  if (value.length > max) return `${key}: ${value.length} entries, at most ${max} allowed`;
  const bad = value.findIndex((entry) => !valid(entry));
  return bad === -1 ? undefined : `${key}[${bad}]: ${show(value[bad])} is malformed`;
}

function isMethod(entry: unknown): boolean {
  const method = entry as Partial<MethodDescriptor> | null;
  return (
    method !== null &&
    typeof method === 'object' &&
    typeof method.name === 'string' &&
    method.name.length > 0 &&
    Buffer.byteLength(method.name) <= RECORD_LIMITS.nameBytes &&
    typeof method.stream === 'boolean' &&
    typeof method.idempotent === 'boolean'
  );
}

function isEndpoint(entry: unknown): boolean {
  const endpoint = entry as Partial<Endpoint> | null;
  return (
    endpoint !== null &&
    typeof endpoint === 'object' &&
    typeof endpoint.protocol === 'string' &&
    PROTOCOL.test(endpoint.protocol) &&
    port('port', endpoint.port) === undefined
  );
}

function metadata(value: unknown): string | undefined {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return `metadata: ${show(value)} is not an object`;
  const depth = nestingDepth(value, RECORD_LIMITS.metadataDepth);
  if (depth > RECORD_LIMITS.metadataDepth) return `metadata: nested more than ${RECORD_LIMITS.metadataDepth} levels deep`;
  let bytes: number;
  try {
    bytes = Buffer.byteLength(JSON.stringify(value));
  } catch (error) {
    return `metadata: not JSON-safe (${(error as Error).message})`;
  }
  return bytes <= RECORD_LIMITS.metadataBytes ? undefined : `metadata: ${bytes} bytes of JSON, at most ${RECORD_LIMITS.metadataBytes} allowed`;
}

/**
 * How deep `value` nests, counted without recursion (so a value nested deeper than the stack
 * is measured, not a RangeError), stopping once it passes `limit`.
 */
function nestingDepth(value: unknown, limit: number): number {
  let deepest = 0;
  const pending: Array<[unknown, number]> = [[value, 1]];
  while (pending.length > 0) {
    const [current, depth] = pending.pop()!;
    if (current === null || typeof current !== 'object') continue;
    if (depth > deepest) deepest = depth;
    if (deepest > limit) return deepest;
    for (const child of Object.values(current as Record<string, unknown>)) if (child !== null && typeof child === 'object') pending.push([child, depth + 1]);
  }
  return deepest;
}
