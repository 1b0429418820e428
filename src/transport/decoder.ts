import { HEADER_BYTES, readHeader, type Frame } from './frame.js';

/**
 * Splits a byte stream into frames, whatever the chunking: half frames wait for the rest
 * (each byte is copied at most once, when the frame completes), and one chunk may hold any
 * number of frames. A header is checked as soon as its 20 bytes are present, so an oversized
 * declared length fails before the body is buffered. After the first error the decoder is
 * spent and throws again on every call; its connection must be closed.
 */
export class FrameDecoder {
  readonly #maxFrameBytes: number;
  #pending: Buffer[] = [];
  #pendingBytes = 0;
  /** Bytes the pending data must reach before it is worth parsing again. */
  #needed = HEADER_BYTES;
  #failure: Error | undefined;

  constructor(maxFrameBytes: number) {
    this.#maxFrameBytes = maxFrameBytes;
  }

  /** Bytes received but not yet handed out as frames. */
  get bufferedBytes(): number {
    return this.#pendingBytes;
  }

  /** Feeds a chunk; calls `onFrame` for every frame it completes, in order. */
  push(chunk: Buffer, onFrame: (frame: Frame) => void): void {
    if (this.#failure !== undefined) throw this.#failure;
    let data = chunk;
    if (this.#pendingBytes > 0) {
      this.#pending.push(chunk);
      this.#pendingBytes += chunk.length;
      if (this.#pendingBytes < this.#needed) return;
      data = Buffer.concat(this.#pending, this.#pendingBytes);
      this.#pending = [];
      this.#pendingBytes = 0;
    }
    try {
      this.#parse(data, onFrame);
    } catch (error) {
      this.#failure = error as Error;
      this.#pending = [];
      this.#pendingBytes = 0;
      throw error;
    }
  }

  #parse(data: Buffer, onFrame: (frame: Frame) => void): void {
    let offset = 0;
    for (;;) {
      const available = data.length - offset;
      if (available < HEADER_BYTES) {
        this.#needed = HEADER_BYTES;
        break;
      }
      const header = readHeader(data, offset, this.#maxFrameBytes);
      const total = HEADER_BYTES + header.bodyLength;
      if (available < total) {
        this.#needed = total;
        break;
      }
      const body = data.subarray(offset + HEADER_BYTES, offset + total);
      offset += total;
      onFrame({
        type: header.type,
        flags: header.flags,
        serializer: header.serializer,
        status: header.status,
        requestId: header.requestId,
        body,
      });
    }
    if (offset < data.length) {
      this.#pending.push(data.subarray(offset));
      this.#pendingBytes = data.length - offset;
    }
  }
}
