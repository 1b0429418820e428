import { readFileSync } from 'node:fs';
import http2 from 'node:http2';
import { gzipSync } from 'node:zlib';
import { pack } from 'msgpackr';

/*
 * Tools of the resource-budget tests: a gRPC peer that asks and never reads its answers, the
 * victim's resident memory, and a latency probe for a well-behaved client.
 */

/** The resident set size of process `pid`, in bytes (Linux: /proc/pid/status). */
export function rssOf(pid: number): number {
  const match = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (match === null) throw new Error(`no VmRSS for process ${pid}`);
  return Number(match[1]) * 1024;
}

/** A gRPC request body for an envelope route: `shuttle.v1.Envelope { bytes body = 1 }`, msgpack inside, length-prefixed. */
export function envelopeMessage(value: unknown): Buffer {
  const body = pack(value);
  const envelope = Buffer.concat([Buffer.from([0x0a]), varint(body.length), body]);
  const prefix = Buffer.alloc(5);
  prefix.writeUInt32BE(envelope.length, 1);
  return Buffer.concat([prefix, envelope]);
}

function varint(value: number): Buffer {
  const bytes: number[] = [];
  while (value > 0x7f) {
    bytes.push((value & 0x7f) | 0x80);
    value >>>= 7;
  }
  bytes.push(value);
  return Buffer.from(bytes);
}

/** The gRPC statuses a {@link requestFlood} heard so far, by code, and the streams still open. */
export interface FloodPeer {
  readonly statuses: Readonly<Record<number, number>>;
  readonly open: number;
  /** The grpc-message of the first status with `code`, if one came. */
  messageOf(code: number): string | undefined;
  close(): void;
}

/**
 * Opens one HTTP/2 connection to `port` and sends `count` gRPC requests to `path`, each with the
 * whole `message` (a length-prefixed gRPC message, see {@link envelopeMessage} and
 * {@link gzipMessage}) or, with `stopAfter`, only its first `stopAfter` bytes and never the
 * rest. Answers are read; their statuses are counted.
 */
export function requestFlood(
  port: number,
  path: string,
  message: Buffer,
  count: number,
  options: { headers?: http2.OutgoingHttpHeaders; stopAfter?: number } = {},
): FloodPeer {
  // Node's own limit on what a session queues (10 MB) would otherwise reset the flood's streams
  // on this side (ENHANCE_YOUR_CALM) before the provider sees them.
  const session = http2.connect(`http://127.0.0.1:${port}`, { maxSessionMemory: 4096 });
  session.on('error', () => {});
  const statuses: Record<number, number> = {};
  const messages = new Map<number, string>();
  let open = 0;
  for (let i = 0; i < count; i++) {
    const stream = session.request({ ':method': 'POST', ':path': path, 'content-type': 'application/grpc', te: 'trailers', ...options.headers });
    open++;
    stream.on('error', () => {});
    stream.resume();
    const read = (headers: http2.IncomingHttpHeaders): void => {
      if (headers['grpc-status'] === undefined) return;
      const code = Number(headers['grpc-status']);
      statuses[code] = (statuses[code] ?? 0) + 1;
      if (!messages.has(code)) messages.set(code, decodeURIComponent(String(headers['grpc-message'] ?? '')));
    };
    stream
      .on('response', read)
      .on('trailers', read)
      .once('close', () => open--);
    if (options.stopAfter === undefined) stream.end(message);
    else stream.write(message.subarray(0, options.stopAfter));
  }
  return {
    statuses,
    get open() {
      return open;
    },
    messageOf: (code) => messages.get(code),
    close: () => session.destroy(),
  };
}

/** A gzip-compressed gRPC message (flag 1) of `value` in the envelope: send it with `grpc-encoding: gzip`. */
export function gzipMessage(value: unknown): Buffer {
  const plain = envelopeMessage(value).subarray(5);
  const compressed = gzipSync(plain, { level: 9 });
  const prefix = Buffer.alloc(5);
  prefix[0] = 1;
  prefix.writeUInt32BE(compressed.length, 1);
  return Buffer.concat([prefix, compressed]);
}

/** An HTTP/2 connection that sent gRPC requests and reads none of their answers. */
export interface UnreadPeer {
  /** Streams the provider has opened an answer on (response headers arrived). */
  readonly answered: number;
  /** Sends one more request on the same connection and reads its gRPC status. */
  ask(path: string, request: unknown): Promise<{ status: number; message: string }>;
  close(): void;
}

/**
 * Opens one HTTP/2 connection to `port` and sends `count` unary gRPC requests to `path`; no
 * stream is ever read, so HTTP/2 flow control stops each answer at the first 64 KB and the
 * provider is left holding the rest. The session itself keeps reading (pings are answered), so
 * only a per-connection budget, not a keepalive timeout, can bound what the provider holds.
 */
export function unreadRequests(port: number, path: string, request: unknown, count: number): UnreadPeer {
  const session = http2.connect(`http://127.0.0.1:${port}`);
  session.on('error', () => {});
  const message = envelopeMessage(request);
  let answered = 0;
  for (let i = 0; i < count; i++) {
    const stream = session.request({ ':method': 'POST', ':path': path, 'content-type': 'application/grpc', te: 'trailers' });
    stream.on('error', () => {});
    stream.once('response', () => answered++);
    stream.end(message);
  }
  return {
    get answered() {
      return answered;
    },
    ask(askPath, askRequest) {
      const stream = session.request({ ':method': 'POST', ':path': askPath, 'content-type': 'application/grpc', te: 'trailers' });
      stream.end(envelopeMessage(askRequest));
      stream.resume();
      return new Promise((resolve, reject) => {
        const read = (headers: http2.IncomingHttpHeaders): void => {
          if (headers['grpc-status'] !== undefined)
            resolve({ status: Number(headers['grpc-status']), message: decodeURIComponent(String(headers['grpc-message'] ?? '')) });
        };
        stream.once('response', read).once('trailers', read).once('error', reject);
      });
    },
    close: () => session.destroy(),
  };
}

/** Latencies of `call` made back to back until `untilMs` (epoch ms) or `maxCalls`, in ms, sorted; throws the first failure. */
export async function latencies(call: () => Promise<unknown>, untilMs: number, maxCalls = 100_000): Promise<number[]> {
  const measured: number[] = [];
  while (Date.now() < untilMs && measured.length < maxCalls) {
    const started = performance.now();
    await call();
    measured.push(performance.now() - started);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  return measured.sort((a, b) => a - b);
}

/** The `p` quantile (0..1) of sorted values. */
export function quantile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? Number.NaN;
}
