import type net from 'node:net';
import type * as grpc from '@grpc/grpc-js';
import type { Packr } from 'msgpackr';

/*
 * Pieces the benchmarks share: command-line options, the raw baseline's length-prefixed
 * framing, and grpc-js service definitions with msgpack bodies (no .proto), so that all
 * systems pay the same serializer.
 */

/** `--name N` from the command line, or `fallback`. */
export function numberOption(name: string, fallback: number, args: readonly string[] = process.argv.slice(2)): number {
  const index = args.indexOf(`--${name}`);
  if (index < 0) return fallback;
  const value = Number(args[index + 1]);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`--${name} needs a positive number, got ${String(args[index + 1])}`);
  return value;
}

/** Calls `onBody` for every 4-byte-length-prefixed message arriving on `socket`. */
export function readLengthPrefixed(socket: net.Socket, onBody: (body: Buffer) => void): void {
  let pending: Buffer = Buffer.alloc(0);
  socket.on('data', (chunk: Buffer) => {
    pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
    let offset = 0;
    while (pending.length - offset >= 4) {
      const length = pending.readUInt32BE(offset);
      if (pending.length - offset - 4 < length) break;
      onBody(pending.subarray(offset + 4, offset + 4 + length));
      offset += 4 + length;
    }
    pending = pending.subarray(offset);
  });
}

/** A 4-byte length prefix followed by `body`, in one buffer. */
export function lengthPrefixed(body: Uint8Array): Buffer {
  const frame = Buffer.allocUnsafe(4 + body.length);
  frame.writeUInt32BE(body.length, 0);
  frame.set(body, 4);
  return frame;
}

/** A one-method grpc-js service definition whose messages are msgpack-encoded. */
export function msgpackGrpcDefinition(packr: Packr, method: string, path: string, responseStream: boolean): grpc.ServiceDefinition {
  return {
    [method]: {
      path,
      requestStream: false,
      responseStream,
      requestSerialize: (value: unknown) => packr.pack(value),
      requestDeserialize: (bytes: Buffer) => packr.unpack(bytes),
      responseSerialize: (value: unknown) => packr.pack(value),
      responseDeserialize: (bytes: Buffer) => packr.unpack(bytes),
    },
  };
}
