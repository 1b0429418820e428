import type { Server } from 'node:http';
import { isIP, type Socket } from 'node:net';

/**
 * Headers on every answer of the admin endpoint. `nosniff`: a browser takes a JSON or text
 * answer (a 404 quoting the path it was asked for) for what its content type says, never for a
 * page. No other site may frame, embed or cache what the endpoint shows, and links out of the
 * dashboard carry no referrer. Answers other than the dashboard also get a policy that runs and
 * loads nothing (the dashboard gets its own, dashboard.ts).
 */
export const ADMIN_HEADERS: Readonly<Record<string, string>> = {
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cross-origin-resource-policy': 'same-origin',
  'cache-control': 'no-store',
};

/** The Content-Security-Policy of every answer except the dashboard page. */
export const NOTHING_RUNS_CSP = "default-src 'none'; frame-ancestors 'none'";

/** Names a browser on this machine uses for a server bound to loopback. */
const LOOPBACK_NAMES = new Set(['localhost', 'localhost.']);

/** True when `host` (an address or name to bind) only reaches this machine. */
export function isLoopback(host: string): boolean {
  const bare = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  if (LOOPBACK_NAMES.has(bare.toLowerCase()) || bare.toLowerCase().endsWith('.localhost')) return true;
  if (isIP(bare) === 4) return bare.startsWith('127.');
  if (isIP(bare) === 6) return bare === '::1' || bare.toLowerCase().startsWith('::ffff:127.');
  return false;
}

/** The host part of a `Host` header (`name`, `name:port`, `[v6]:port`), lower case; undefined when malformed. */
function hostOf(header: string): string | undefined {
  const match = /^(\[[0-9A-Fa-f:.]+\]|[^:[\]]+)(?::\d{1,5})?$/.exec(header);
  return match === null ? undefined : match[1]!.toLowerCase();
}

/**
 * Which `Host` headers the admin endpoint answers. Bound to loopback (the default), only the
 * names of loopback (`localhost`, `127.x.x.x`, `[::1]`) and the `allowed` names: a web page the
 * operator visits can make the browser resolve its own domain to 127.0.0.1 (DNS rebinding) and
 * then read the endpoint as same-origin; such a request still names the page's domain, and is
 * refused. Bound to another address, deliberately exposed, any name unless `allowed` is given
 * (scrapers name the host as their configuration does).
 */
export function hostCheck(boundHost: string, allowed: readonly string[] | undefined): (header: string | undefined) => boolean {
  const names = new Set((allowed ?? []).map((name) => hostOf(name) ?? name.toLowerCase()));
  const loopbackOnly = isLoopback(boundHost);
  if (!loopbackOnly && allowed === undefined) return () => true;
  return (header) => {
    const host = header === undefined ? undefined : hostOf(header);
    if (host === undefined) return false;
    return names.has(host) || (loopbackOnly && isLoopback(host));
  };
}

/** How long a connection past the limit is kept for its client to read the 503, at most. */
const REFUSED_LINGER_MS = 1000;

/**
 * Holds `server` to `max` connections open at once. One past it is answered at once with a
 * 503 that names the limit, then closed: a scraper or a browser sees why, where a bare close
 * would look like a network fault. Returns whether a socket is one of those refused: its
 * requests must not be answered.
 */
export function limitConnections(server: Server, max: number): (socket: Socket) => boolean {
  const refused = new WeakSet<Socket>();
  let open = 0;
  server.on('connection', (socket: Socket) => {
    open += 1;
    socket.once('close', () => {
      open -= 1;
    });
    if (open <= max) return;
    refused.add(socket);
    const body = `the admin endpoint has ${max} connections open, its limit (maxConnections); retry later\n`;
    socket.end(
      `HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
    setTimeout(() => socket.destroy(), REFUSED_LINGER_MS).unref();
  });
  return (socket) => refused.has(socket);
}
