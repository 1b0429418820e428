import type net from 'node:net';
import { Packr } from 'msgpackr';
import { encodeMeta, encodeRoute } from '../../src/transport/envelope.js';
import type { Metadata } from '../../src/call/invocation.js';
import { encodeFrame, FrameType, HEADER_BYTES } from '../../src/transport/frame.js';

const packr = new Packr({ useRecords: false, moreTypes: true });

/** Builds a REQUEST frame by hand, for tests that talk to a provider over a raw socket. */
export function requestFrame(
  id: number,
  method: string,
  payload: Uint8Array | unknown,
  options: { service?: string; version?: string; meta?: Metadata; serializer?: number } = {},
): Buffer {
  const bytes = payload instanceof Uint8Array ? payload : packr.pack(payload);
  const body = Buffer.concat([encodeRoute(options.service ?? 'test.Echo', options.version ?? '1.0.0', '', method), encodeMeta(options.meta), bytes]);
  return encodeFrame(FrameType.REQUEST, id, body, { serializer: options.serializer ?? 1 });
}

/** Decodes a msgpack response body. */
export function unpack(body: Buffer): unknown {
  return packr.unpack(body);
}

/**
 * Wraps a raw provider's connection handler: a consumer's connection opens with a HEARTBEAT and
 * sends its calls only once the provider has answered it, as every provider does. The wrapper
 * answers that first heartbeat, then hands the socket to `onSocket`, which sees what the
 * consumer sends after it (nothing is sent before the answer, so it misses nothing).
 */
export function afterOpening(onSocket: (socket: net.Socket) => void): (socket: net.Socket) => void {
  return (socket) => {
    socket.on('error', () => {});
    let head = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      head = Buffer.concat([head, chunk]);
      if (head.length < HEADER_BYTES) return;
      socket.off('data', onData);
      socket.write(encodeFrame(FrameType.HEARTBEAT_ACK, 0));
      onSocket(socket);
      const rest = head.subarray(HEADER_BYTES);
      if (rest.length > 0) socket.emit('data', rest);
    };
    socket.on('data', onData);
  };
}
