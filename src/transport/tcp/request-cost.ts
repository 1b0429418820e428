import { sharesMemory, type Serializer } from '../../serializer/serializer.js';

/*
 * What one running call holds besides its decoded payload, so that the decoded budgets
 * (`maxDecodedBytesPerConnection`, `maxTotalDecodedBytes`) count all of a call's memory, and
 * what makes a payload safe to keep for the whole call.
 */

/**
 * What one running call costs the provider beside its request: the call, its handler context,
 * its promises, a deadline entry, and what a small handler keeps while it waits (50,000 calls
 * sleeping in a handler that listens to its signal and holds a timer made a provider 160 MB
 * larger, 3.2 KB each). Charged for every call, so that peers starting calls that cost nothing
 * to decode (an empty request to a method that takes a minute) cannot start them without bound:
 * the server's default 24 MiB holds 16,384 such calls at once before requests wait, and one
 * connection's 16 MiB more than its 10,000 calls (maxCallsPerConnection).
 */
export const CALL_BYTES = 1536;

/** What one metadata entry costs beside its strings (a property of the metadata object). */
const ENTRY_BYTES = 64;

/**
 * The memory a call's head (route and metadata) holds while the call runs: up to 8 MiB of
 * metadata can come with a payload of one byte. Each UTF-8 byte turns into at most one UTF-16
 * code unit (2 bytes), and each entry is a property of its own.
 *
 * @param headBytes the head's size on the wire (where the payload starts)
 * @param entries the head's metadata entries
 */
export function headCost(headBytes: number, entries: number): number {
  return CALL_BYTES + 2 * headBytes + ENTRY_BYTES * entries;
}

/**
 * The payload a serializer may decode: as it is when the serializer never keeps views into what
 * it decodes (`ownsDecoded`, as msgpack and JSON), else — a protobuf `bytes` field, a plugin's
 * serializer — a copy of its own when it is a small view into a much larger read. A frame that
 * arrived whole within one socket read shares that read's memory (up to 64 KiB) with the frames
 * around it, and a decoded view would keep the whole read for as long as the call runs: 64 KiB
 * held for a request priced at a few bytes. The copy is of its own size, not from the shared
 * pool, whose 8 KiB slabs a kept view would hold in the same way.
 */
export function ownPayload(payload: Buffer, serializer: Pick<Serializer, 'ownsDecoded'>): Buffer {
  if (serializer.ownsDecoded === true || !sharesMemory(payload)) return payload;
  const copy = Buffer.allocUnsafeSlow(payload.length);
  payload.copy(copy);
  return copy;
}
