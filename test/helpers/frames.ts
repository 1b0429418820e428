import { Packr } from 'msgpackr';
import { encodeMeta, encodeRoute } from '../../src/transport/envelope.js';
import type { Metadata } from '../../src/call/invocation.js';
import { encodeFrame, FrameType } from '../../src/transport/frame.js';

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
