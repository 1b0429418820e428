import { createClient, type RpcClient } from '../client/client.js';
import { codeName, RpcCode, RpcError } from '../errors/errors.js';
import type { MethodDescriptor, ServiceInstance } from '../registry/registry.js';
import { UsageError } from './errors.js';
import { explainGrpcFailure, grpcCalling, protoFieldsToCamel } from './grpc-target.js';
import { openRegistry, recordsOf, type CommonOptions } from './registry-view.js';
import { suggestion } from './describe.js';

/** Options of the commands that make calls. */
export interface CallingOptions extends CommonOptions {
  timeout: number;
  version?: string;
  group?: string;
  transport: 'tcp' | 'grpc';
  /** .proto files declaring the service, for `--transport grpc`. */
  proto?: string[];
  token?: string;
  metadata: Record<string, string>;
}

/** What `call` and `bench` need to make calls: a client, the method and whether it streams. */
export interface Target {
  readonly client: RpcClient;
  readonly service: string;
  readonly method: string;
  readonly stream: boolean;
  readonly request: unknown;
  /** Makes one call; a stream is returned unread. */
  call(signal: AbortSignal): unknown;
  /** The error to show for a failed call (with what to do, where the CLI knows). */
  explain(error: unknown): unknown;
}

/**
 * Checks `SERVICE.METHOD` and the JSON request, finds the method in the registry records (which
 * say whether it streams), and opens a client. Usage mistakes are UsageErrors that say what
 * would be right; the caller closes the client.
 */
export async function openTarget(target: string, requestText: string, options: CallingOptions): Promise<Target> {
  const at = target.lastIndexOf('.');
  if (at <= 0 || at === target.length - 1) throw new UsageError(`expected SERVICE.METHOD, e.g. inference.LLM.generate, got ${JSON.stringify(target)}`);
  const service = target.slice(0, at);
  const method = target.slice(at + 1);
  let request: unknown;
  try {
    request = JSON.parse(requestText);
  } catch (error) {
    throw new UsageError(
      `the request must be JSON (${(error as Error).message}), got ${JSON.stringify(requestText.slice(0, 80))}; quote it for the shell: '{"prompt":"hi"}'`,
    );
  }
  const { url, registry } = await openRegistry(options);
  let descriptor: MethodDescriptor | undefined;
  let records: readonly ServiceInstance[];
  try {
    records = await recordsOf(registry, service);
    if (records.length === 0) throw new RpcError(RpcCode.UNAVAILABLE, `no provider of ${service} in ${url}${await suggestion(registry, service)}`);
    const methods = new Map(records.flatMap((record) => record.methods).map((entry) => [entry.name, entry]));
    // A .proto rpc name (`Embed`) stands for the method `embed`, as on the grpc transport.
    descriptor = methods.get(method) ?? methods.get(method.charAt(0).toLowerCase() + method.slice(1));
    // Direct (shuttle://) registries know addresses only, not methods: then just try.
    if (descriptor === undefined && methods.size > 0) {
      throw new UsageError(`${service} has no method ${JSON.stringify(method)}; its methods: ${[...methods.keys()].sort().join(', ')}`);
    }
  } finally {
    await registry.close();
  }
  if (options.proto !== undefined && options.transport !== 'grpc') throw new UsageError('--proto is for --transport grpc (tcp needs no .proto)');
  const grpc = options.transport === 'grpc' ? await grpcCalling(service, options.proto, records, options.timeout) : undefined;
  if (grpc?.declaredBy !== undefined) request = protoFieldsToCamel(request);
  const client = await createClient({
    registry: url,
    transport: grpc?.transport ?? options.transport,
    timeoutMs: options.timeout,
    ...(options.token === undefined ? {} : { token: options.token }),
  });
  const proxy = client.proxy<Record<string, (request: unknown, callOptions: object) => unknown>>(service, {
    ...(options.version === undefined ? {} : { version: options.version }),
    ...(options.group === undefined ? {} : { group: options.group }),
  });
  const name = descriptor?.name ?? method;
  return {
    client,
    service,
    method: name,
    stream: descriptor?.stream === true,
    request,
    call: (signal) => proxy[name]!(request, { signal, metadata: options.metadata }),
    explain: (error) => (grpc === undefined ? error : explainGrpcFailure(error, grpc, service)),
  };
}

/** JSON for any result: typed arrays as arrays, BigInts as strings, Maps as objects. */
export function toJson(value: unknown, indent?: number): string {
  return (
    JSON.stringify(
      value,
      (_key, entry: unknown) => {
        if (ArrayBuffer.isView(entry) && !(entry instanceof DataView))
          return Array.from(entry as unknown as ArrayLike<number | bigint>, (item) => (typeof item === 'bigint' ? item.toString() : item));
        if (typeof entry === 'bigint') return entry.toString();
        if (entry instanceof Map) return Object.fromEntries(entry);
        return entry;
      },
      indent,
    ) ?? 'null'
  );
}

/** `[code name]` of a failure, for tallies. */
export function failureName(error: unknown): string {
  return error instanceof RpcError ? codeName(error.code) : 'unknown';
}
