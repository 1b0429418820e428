import { RpcCode, RpcError, thrownMessage } from '../errors/errors.js';
import { invalidOption } from '../common/validate.js';

/** Which payload is being encoded or decoded: the request of a method, or its response. */
export interface PayloadTarget {
  readonly service: string;
  readonly method: string;
  readonly kind: 'request' | 'response';
}

/**
 * Turns one payload (a method's request value or its response value) into bytes and back.
 *
 * Contract:
 * - `id` is the byte written in every frame header; it must be unique within a client or server
 *   and in 1..255 (0 means "no body"). Built-ins: 1 msgpack, 2 json, 3 protobuf.
 * - `encode` may return a view into a buffer it reuses; the caller copies the bytes before the
 *   next `encode` call on the same serializer.
 * - `decode` throws on bytes it cannot read; the caller turns that into INVALID_ARGUMENT for a
 *   request and INTERNAL for a response. `undefined` must survive a round trip.
 */
export interface Serializer {
  readonly id: number;
  readonly name: string;
  encode(value: unknown, target: PayloadTarget): Uint8Array;
  decode(bytes: Uint8Array, target: PayloadTarget): unknown;
  /**
   * Optional: checks `bytes` against the serializer's decode limits without decoding and returns
   * the estimated bytes the decoded value will take (throws like `decode` when over a limit).
   * Transports use it to charge a connection's budget of decoded objects before decoding; a
   * `decode` of the same bytes right after need not check again.
   */
  check?(bytes: Uint8Array, target: PayloadTarget): number;
  /**
   * Optional: `true` when what `decode` returns never keeps a view into `bytes` while `bytes`
   * shares its memory with more than itself ({@link sharesMemory}; it copies what it would keep).
   * A transport passes payloads as they are to such a serializer, and otherwise copies a payload
   * that is a small view into a larger socket read before decoding it: a decoded binary value
   * would keep the whole read alive for as long as the call holds it.
   */
  readonly ownsDecoded?: boolean;
}

/**
 * Whether `bytes` is a small view into a larger buffer, such as one frame of a 64 KiB socket
 * read: a value that kept a view into it would keep all of that buffer, many times its own size.
 */
export function sharesMemory(bytes: Uint8Array): boolean {
  return bytes.buffer.byteLength > 2 * bytes.byteLength + SHARED_SLACK_BYTES;
}

/** What a kept view may hold beyond twice the bytes it belongs to. */
const SHARED_SLACK_BYTES = 1024;

/** Stable ids of the built-in serializers (the wire's serializer byte). */
export const SerializerId = { NONE: 0, MSGPACK: 1, JSON: 2, PROTOBUF: 3 } as const;

/** Serializers every client and server speaks besides those it configures. */
export const DEFAULT_SERIALIZERS: readonly string[] = ['msgpack', 'json'];

/** Tells a Serializer instance from a spec. */
export function isSerializer(value: unknown): value is Serializer {
  return (
    value !== null &&
    typeof value === 'object' &&
    typeof (value as Serializer).encode === 'function' &&
    typeof (value as Serializer).decode === 'function' &&
    typeof (value as Serializer).id === 'number'
  );
}

/**
 * The serializers one client or server speaks, looked up by wire id or by name. Built per
 * instance (never a module global) so two clients in a process can differ.
 */
export class SerializerSet {
  readonly #byId = new Map<number, Serializer>();
  readonly #byName = new Map<string, Serializer>();

  constructor(serializers: Iterable<Serializer>) {
    for (const serializer of serializers) {
      if (!Number.isInteger(serializer.id) || serializer.id < 1 || serializer.id > 255) {
        throw invalidOption(`serializer ${serializer.name} id`, serializer.id, 'an integer from 1 to 255');
      }
      const clash = this.#byId.get(serializer.id);
      if (clash !== undefined && clash.name !== serializer.name) {
        throw invalidOption(`serializer ${serializer.name} id`, serializer.id, `an id not already used by ${clash.name}`);
      }
      this.#byId.set(serializer.id, serializer);
      this.#byName.set(serializer.name, serializer);
    }
  }

  /** The serializer with wire id `id`, or undefined. */
  byId(id: number): Serializer | undefined {
    return this.#byId.get(id);
  }

  /** The serializer named `name`; throws a TypeError listing the known names otherwise. */
  byName(name: string): Serializer {
    const found = this.#byName.get(name);
    if (found === undefined) throw invalidOption('serializer', name, [...this.#byName.keys()].join(', '));
    return found;
  }

  /** The names of all serializers in the set. */
  names(): string[] {
    return [...this.#byName.keys()];
  }
}

/** Wraps a decoding failure so the caller sees which method and which payload was bad. */
export function decodeError(target: PayloadTarget, serializer: Serializer, cause: unknown): RpcError {
  const code = target.kind === 'request' ? RpcCode.INVALID_ARGUMENT : RpcCode.INTERNAL;
  // An RpcError's own message without its code prefix: the wrapper has a code of its own. A
  // plugin's decode may throw anything, a Proxy whose every trap throws included: it is read
  // through guarded reads only, or the error escaped the transport and closed the connection.
  let reason: string;
  try {
    reason = cause instanceof RpcError ? cause.rawMessage : thrownMessage(cause);
  } catch {
    reason = thrownMessage(cause);
  }
  return new RpcError(code, `cannot decode ${target.kind} of ${target.service}.${target.method} as ${serializer.name}: ${reason}`, {
    cause,
  });
}
