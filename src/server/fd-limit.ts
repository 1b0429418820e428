import { fdHeadroom, fdSoftLimit } from '../common/fd-limit.js';
import type { Logger } from '../log/log.js';
import type { ConnectionLimits } from '../transport/transport.js';

export { fdHeadroom, fdSoftLimit } from '../common/fd-limit.js';

/** Limits lowered to fit the fd limit, and what they were. */
export interface FittedLimits {
  readonly limits: ConnectionLimits;
  /** Present when something was lowered: the numbers for the warning. */
  readonly lowered?: { readonly softLimit: number; readonly from: Pick<ConnectionLimits, 'maxConnections' | 'maxConnectionsPerAddress'> };
}

/**
 * Fits the connection limits of `transports` transport servers (each admits up to
 * maxConnections) into `softLimit` descriptors less the headroom. Without this, connections
 * past the fd limit fail in accept() with EMFILE for everyone — one address holding 1,000 idle
 * connections under `ulimit -n 1024` locked every other client out. When maxConnections is
 * lowered, maxConnectionsPerAddress is kept to half of it, so that one address never takes
 * every descriptor there is.
 */
export function fitToFdLimit(limits: ConnectionLimits, transports: number, softLimit: number | undefined): FittedLimits {
  if (softLimit === undefined) return { limits };
  const perTransport = Math.max(1, Math.floor((softLimit - fdHeadroom(softLimit)) / transports));
  if (limits.maxConnections <= perTransport) return { limits };
  const maxConnections = perTransport;
  const maxConnectionsPerAddress = Math.min(limits.maxConnectionsPerAddress, Math.max(1, Math.floor(maxConnections / 2)));
  return {
    limits: { ...limits, maxConnections, maxConnectionsPerAddress },
    lowered: { softLimit, from: { maxConnections: limits.maxConnections, maxConnectionsPerAddress: limits.maxConnectionsPerAddress } },
  };
}

/**
 * The limits to start `transports` transport servers with under this process's fd limit:
 * `limits` unchanged when they fit, else lowered with one warning saying from what, to what,
 * and how to keep them.
 */
export function limitsWithinFds(limits: ConnectionLimits, transports: number, log: Logger): ConnectionLimits {
  const fitted = fitToFdLimit(limits, transports, fdSoftLimit());
  if (fitted.lowered === undefined) return limits;
  const { softLimit, from } = fitted.lowered;
  const to = { maxConnections: fitted.limits.maxConnections, maxConnectionsPerAddress: fitted.limits.maxConnectionsPerAddress };
  log.warn(
    { softLimit, transports, from, to },
    `limits.maxConnections ${from.maxConnections} (per address ${from.maxConnectionsPerAddress}) on ${transports} transport(s) exceeds what the open-file limit of ${softLimit} allows beside files and outgoing connections; lowered to ${to.maxConnections} (per address ${to.maxConnectionsPerAddress}). Raise the limit (ulimit -n, systemd LimitNOFILE) to keep them`,
  );
  return fitted.limits;
}
