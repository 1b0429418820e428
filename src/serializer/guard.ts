import { RpcCode, RpcError } from '../errors/errors.js';
import { encodeFailure } from './encode-failure.js';
import type { PayloadTarget, Serializer } from './serializer.js';

/** Serializers whose `encode` keeps the contract itself (the built-ins): not wrapped. */
const SELF_CHECKED = new WeakSet<Serializer>();

/** Marks a built-in serializer whose encode already fails only with a worded RpcError and returns bytes. */
export function selfChecked<T extends Serializer>(serializer: T): T {
  SELF_CHECKED.add(serializer);
  return serializer;
}

/**
 * `serializer` held to the encode contract, for a plugin's serializer: what its `encode`
 * throws becomes the error of an encode failure naming the method, the payload and the
 * serializer (INVALID_ARGUMENT for a request, never sent; INTERNAL for a response), and a
 * result that is not a Uint8Array fails the same way instead of reaching the frame writer
 * (which read `.length` of undefined, or sent a string's characters as bytes). `decode` is
 * not wrapped: every transport already words its failures (`decodeError`). A built-in
 * serializer is returned as it is, so the built-ins' hot path is unchanged.
 */
export function guardSerializer(serializer: Serializer): Serializer {
  if (SELF_CHECKED.has(serializer)) return serializer;
  const name = String(serializer.name);
  const encode = (value: unknown, target: PayloadTarget): Uint8Array => {
    let bytes: unknown;
    try {
      bytes = serializer.encode(value, target);
    } catch (error) {
      if (error instanceof RpcError) throw error;
      throw encodeFailure(target, name, value, error);
    }
    if (bytes instanceof Uint8Array) return bytes;
    const code = target.kind === 'request' ? RpcCode.INVALID_ARGUMENT : RpcCode.INTERNAL;
    throw new RpcError(
      code,
      `cannot encode the ${target.kind} of ${target.service}.${target.method} as ${name}: its encode returned ${bytes === null ? 'null' : typeof bytes}, not a Uint8Array`,
    );
  };
  const guarded: Serializer = {
    id: serializer.id,
    name: serializer.name,
    encode,
    decode: serializer.decode.bind(serializer),
    ...(serializer.check === undefined ? {} : { check: serializer.check.bind(serializer) }),
    ...(serializer.ownsDecoded === undefined ? {} : { ownsDecoded: serializer.ownsDecoded }),
  };
  return selfChecked(guarded);
}
