import type net from 'node:net';

/**
 * Writes frames to a socket, coalescing every frame written in one tick into a single writev.
 * Under load this turns hundreds of small writes (one syscall each) into one; with one call in
 * flight it adds no delay, because the flush runs on the same tick's nextTick queue, before any
 * I/O — there is no batching timer.
 */
export class FrameWriter {
  readonly #socket: net.Socket;
  #corked = false;
  readonly #uncork = (): void => {
    this.#corked = false;
    this.#socket.uncork();
  };

  constructor(socket: net.Socket) {
    this.#socket = socket;
  }

  /** Queues `frame`; returns false when the socket is gone and the frame was dropped. */
  write(frame: Uint8Array): boolean {
    const socket = this.#socket;
    if (socket.destroyed || !socket.writable) return false;
    if (!this.#corked) {
      this.#corked = true;
      socket.cork();
      process.nextTick(this.#uncork);
    }
    socket.write(frame);
    return true;
  }
}
