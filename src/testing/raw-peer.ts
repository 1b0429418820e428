import net from 'node:net';
import { FrameDecoder } from '../transport/decoder.js';
import type { Frame } from '../transport/frame.js';
import { DEFAULT_MAX_FRAME_BYTES } from '../transport/defaults.js';

/**
 * A bare socket speaking the frame format, for protocol tests: send any bytes (valid frames or
 * not) and read the frames that come back. Frames are copied so they outlive the chunk.
 */
export interface RawPeer {
  /** Frames received so far, in order. */
  readonly frames: readonly Frame[];
  /** Whether the other side has closed the connection. */
  readonly closed: boolean;
  send(bytes: Uint8Array): void;
  /** Resolves with the next frame matching `predicate`, or rejects after `timeoutMs`. */
  nextFrame(predicate?: (frame: Frame) => boolean, timeoutMs?: number): Promise<Frame>;
  /** Resolves when the other side closes the connection, or rejects after `timeoutMs`. */
  waitClosed(timeoutMs?: number): Promise<void>;
  close(): void;
}

/** Opens a raw connection to a shuttle tcp endpoint. */
export async function connectRaw(host: string, port: number): Promise<RawPeer> {
  const socket = net.connect({ host, port, noDelay: true });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  socket.on('error', () => {});
  const frames: Frame[] = [];
  const waiters = new Set<() => void>();
  const wake = (): void => {
    for (const waiter of [...waiters]) waiter();
  };
  let closed = false;
  const decoder = new FrameDecoder(DEFAULT_MAX_FRAME_BYTES);
  socket.on('data', (chunk: Buffer) => {
    try {
      decoder.push(chunk, (frame) => frames.push({ ...frame, body: Buffer.from(frame.body) }));
    } catch {
      socket.destroy();
    }
    wake();
  });
  socket.on('close', () => {
    closed = true;
    wake();
  });

  const waitFor = <T>(check: () => T | undefined, timeoutMs: number, what: string): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      const attempt = (): void => {
        const found = check();
        if (found !== undefined) {
          waiters.delete(attempt);
          clearTimeout(timer);
          resolve(found);
        }
      };
      const timer = setTimeout(() => {
        waiters.delete(attempt);
        reject(new Error(`raw peer: no ${what} within ${timeoutMs} ms`));
      }, timeoutMs);
      waiters.add(attempt);
      attempt();
    });

  let consumed = 0;
  return {
    frames,
    get closed() {
      return closed;
    },
    send: (bytes) => {
      socket.write(bytes);
    },
    nextFrame: (predicate = () => true, timeoutMs = 2000) =>
      waitFor(
        () => {
          for (let i = consumed; i < frames.length; i++) {
            if (predicate(frames[i]!)) {
              consumed = i + 1;
              return frames[i];
            }
          }
          return undefined;
        },
        timeoutMs,
        'matching frame',
      ),
    waitClosed: (timeoutMs = 2000) => waitFor(() => (closed ? true : undefined), timeoutMs, 'close').then(() => undefined),
    close: () => socket.destroy(),
  };
}
