import { isIP } from 'node:net';

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
