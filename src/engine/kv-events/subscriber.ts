import type { Subscriber } from 'zeromq';

const FIRST_RETRY_MS = 200;
const LAST_RETRY_MS = 5_000;

/** One message of the engine's event stream: its sequence number and payload. */
export interface KvMessage {
  readonly seq: bigint;
  readonly payload: Uint8Array;
}

/** Limits and place of a {@link subscribe}d stream. */
export interface SubscribeOptions {
  /** The engine's publisher, e.g. `tcp://127.0.0.1:5557`. */
  readonly endpoint: string;
  /** The topic prefix subscribed to ('' for all, vLLM's default). */
  readonly topic: string;
  /** A message longer than this makes ZeroMQ drop the connection (and reconnect). */
  readonly maxMessageBytes: number;
  /** Messages ZeroMQ queues for this process before it drops new ones (counted as a gap). */
  readonly queuedMessages: number;
}

/** A running subscription; `close()` ends its loop. */
export interface KvSubscription {
  close(): void;
}

/**
 * Subscribes to an engine's KV-event publisher (ZeroMQ PUB; vLLM and SGLang send each batch as
 * the three frames `[topic, seq as 8 bytes big-endian, payload]`) and hands each message to
 * `onMessage` in order, the next once the one before is done (its promise settled; it must not
 * reject). A message of any other shape goes to `onBad` with what was wrong, and
 * each lost connection to `onDisconnect` (it is made again, 200 ms to 5 s later). Loaded on
 * first use, so a worker that does not follow KV events never loads the native addon.
 */
export async function subscribe(
  options: SubscribeOptions,
  onMessage: (message: KvMessage) => void | Promise<void>,
  onBad: (problem: string) => void,
  onDisconnect: () => void,
): Promise<KvSubscription> {
  let zmq: typeof import('zeromq');
  try {
    zmq = await import('zeromq');
  } catch (error) {
    throw new Error(`following an engine's KV events needs the zeromq package, which did not load: ${(error as Error).message}`, { cause: error });
  }
  const socket: Subscriber = new zmq.Subscriber({
    maxMessageSize: options.maxMessageBytes,
    receiveHighWaterMark: options.queuedMessages,
    reconnectInterval: FIRST_RETRY_MS,
    reconnectMaxInterval: LAST_RETRY_MS,
  });
  try {
    socket.subscribe(options.topic);
    socket.connect(options.endpoint);
  } catch (error) {
    socket.close();
    throw new Error(`cannot follow KV events at ${options.endpoint}: ${(error as Error).message}`, { cause: error });
  }
  let retryMs = FIRST_RETRY_MS;
  let retry: NodeJS.Timeout | undefined;
  void (async () => {
    try {
      for await (const frames of socket) {
        retryMs = FIRST_RETRY_MS;
        if (frames.length !== 3 || frames[1]!.length !== 8) {
          onBad(
            `a message must be [topic, 8-byte seq, payload], got ${frames.length} frames${frames.length === 3 ? ` with a ${frames[1]!.length}-byte seq` : ''}`,
          );
          continue;
        }
        const seq = Buffer.from(frames[1]!.buffer, frames[1]!.byteOffset, 8).readBigUInt64BE(0);
        await onMessage({ seq, payload: frames[2]! });
        // Queued messages are handed over one after another without a turn of the event loop
        // between them: a publisher sending a little faster than they are applied would
        // otherwise keep the worker from its calls for as long as it kept on.
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
    } catch (error) {
      // The socket closed: close() was called. Anything else is reported.
      if (!socket.closed) onBad(`the subscription stopped: ${(error as Error).message}`);
    }
  })();
  // ZeroMQ reconnects by itself after the engine goes away, but not after a protocol error —
  // which a message over maxMessageSize is — so one oversized message would end the
  // subscription for good. Every lost connection is made again here, backing off while the
  // publisher keeps breaking it.
  void (async () => {
    try {
      for await (const event of socket.events) {
        if (event.type !== 'disconnect' || socket.closed) continue;
        onDisconnect();
        clearTimeout(retry);
        retry = setTimeout(() => {
          if (socket.closed) return;
          try {
            socket.disconnect(options.endpoint);
          } catch {
            // Already gone: ZeroMQ dropped the endpoint with the session.
          }
          try {
            socket.connect(options.endpoint);
          } catch (error) {
            // In a timer a throw would end the process: reported instead.
            onBad(`cannot connect to ${options.endpoint} again: ${(error as Error).message}`);
          }
        }, retryMs);
        retry.unref();
        retryMs = Math.min(LAST_RETRY_MS, retryMs * 2);
      }
    } catch {
      // The socket closed.
    }
  })();
  return {
    close: () => {
      clearTimeout(retry);
      socket.close();
    },
  };
}
