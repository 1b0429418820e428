/**
 * A listen error an operator can act on: `{what} cannot listen on host:port: ` and what is wrong
 * in words — a port in use, a port not allowed, an address not of this machine, a host name
 * that does not resolve — with what to do. Node's own text (`listen EADDRINUSE: address already
 * in use`) names neither which of a process's servers failed nor the way out. Anything else
 * keeps Node's message after the same prefix. The original error is the `cause`.
 */
export function listenFailure(error: unknown, what: string, host: string, port: number): Error {
  const where = `${what === '' ? '' : `${what} `}cannot listen on ${host.includes(':') ? `[${host}]` : host}:${port}`;
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  const reason =
    code === 'EADDRINUSE'
      ? 'another process listens there (EADDRINUSE); choose another port, or port 0 for any free one'
      : code === 'EACCES'
        ? 'not allowed (EACCES; ports below 1024 need privileges); choose a port from 1024, or 0 for any free one'
        : code === 'EADDRNOTAVAIL'
          ? `${host} is not an address of this machine (EADDRNOTAVAIL)`
          : code === 'ENOTFOUND' || code === 'EAI_AGAIN'
            ? `the host name ${host} does not resolve (${code}); give an address of this machine, e.g. 127.0.0.1 or 0.0.0.0`
            : ((error as Error | undefined)?.message ?? String(error));
  return new Error(`${where}: ${reason}`, { cause: error });
}
