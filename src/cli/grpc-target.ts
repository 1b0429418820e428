import grpc from '@grpc/grpc-js';
import { RpcCode, RpcError } from '../errors/errors.js';
import type { ServiceInstance } from '../registry/registry.js';
import { fetchDescriptorSet } from '../transport/grpc/reflection-client.js';

/*
 * How `call` and `bench` reach a service over `--transport grpc`. A service declared in a
 * .proto is served at the .proto's paths with protobuf bodies, so the consumer needs the same
 * declarations: from `--proto FILE`, else from the provider's server reflection (as grpcurl
 * does). Without either the generic envelope is used, which is right for services no .proto
 * declares; when that fails UNIMPLEMENTED the error says what to do.
 */

/** How long reflection may take before the call goes on without it. */
const REFLECTION_TIMEOUT_MS = 5000;

/** The grpc transport options for calling `service`, and where its declarations came from. */
export interface GrpcCalling {
  readonly transport: { type: 'grpc'; options: Record<string, unknown> };
  /** `--proto`, `reflection`, or undefined for the generic envelope. */
  readonly declaredBy: 'proto' | 'reflection' | undefined;
}

/**
 * Finds the declarations of `service`: the `--proto` files when given, else server reflection
 * on the first provider with a grpc endpoint. Reflection that fails (an older or foreign
 * server) is not an error here: the call goes on with the envelope.
 */
export async function grpcCalling(
  service: string,
  proto: readonly string[] | undefined,
  records: readonly ServiceInstance[],
  timeoutMs: number,
): Promise<GrpcCalling> {
  if (proto !== undefined && proto.length > 0) return { transport: { type: 'grpc', options: { protoFiles: [...proto] } }, declaredBy: 'proto' };
  const endpoint = records
    .flatMap((record) =>
      (record.endpoints ?? [{ protocol: record.protocol, port: record.port }])
        .filter((entry) => entry.protocol === 'grpc')
        .map((entry) => ({ host: record.host, port: entry.port })),
    )
    .at(0);
  if (endpoint !== undefined) {
    const host = endpoint.host.includes(':') ? `[${endpoint.host}]` : endpoint.host;
    try {
      const descriptorSet = await fetchDescriptorSet(
        { address: `${host}:${endpoint.port}`, credentials: grpc.credentials.createInsecure(), timeoutMs: Math.min(timeoutMs, REFLECTION_TIMEOUT_MS) },
        service,
      );
      return { transport: { type: 'grpc', options: { descriptorSet } }, declaredBy: 'reflection' };
    } catch {
      // No reflection, or the service is not in it: served through the envelope, or the
      // failure below says to pass --proto.
    }
  }
  return { transport: { type: 'grpc', options: {} }, declaredBy: undefined };
}

/**
 * A request written with the .proto's field names (`max_tokens`, as grpcurl takes it) in the
 * lowerCamelCase the grpc transport uses (`maxTokens`); camelCase keys stay as they are.
 */
export function protoFieldsToCamel(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(protoFieldsToCamel);
  if (value === null || typeof value !== 'object') return value;
  return Object.fromEntries(
    Object.entries(value).map(([key, entry]) => [key.replace(/_([a-z0-9])/g, (_match, letter: string) => letter.toUpperCase()), protoFieldsToCamel(entry)]),
  );
}

/** What a server answers when it cannot take the envelope for its .proto's message, or has no such path. */
const ENVELOPE_MISMATCH = new Set<RpcCode>([RpcCode.UNIMPLEMENTED, RpcCode.INTERNAL, RpcCode.INVALID_ARGUMENT]);

/**
 * The error to show for a failed grpc call. Sent through the envelope, an UNIMPLEMENTED (no
 * such path), INTERNAL or INVALID_ARGUMENT (a body that is not the rpc's message) most often
 * means the server serves the service as a .proto declares it: the error then says how to
 * pass one.
 */
export function explainGrpcFailure(error: unknown, calling: GrpcCalling, service: string): unknown {
  if (!(error instanceof RpcError) || !ENVELOPE_MISMATCH.has(error.code) || calling.declaredBy !== undefined) return error;
  return new RpcError(
    error.code,
    `${error.rawMessage}. The call went in shuttle's generic envelope, as the server offers no reflection for ${service}; if a .proto declares the service, pass it with --proto FILE`,
    { cause: error, details: error.details },
  );
}
