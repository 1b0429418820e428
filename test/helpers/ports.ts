import { readFileSync } from 'node:fs';
import net from 'node:net';

/**
 * The first port of the kernel's ephemeral range (the local ports of outgoing connections and
 * of `listen(0)`): 32768 on Linux unless configured otherwise.
 */
function ephemeralStart(): number {
  try {
    const first = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    return Number.isInteger(first) && first > 11_000 ? first : 32_768;
  } catch {
    return 32_768;
  }
}

const LOW = 10_000;
const HIGH = ephemeralStart();

/**
 * A TCP port that was free on `host` a moment ago, for a process started later to listen on
 * (etcd). It is drawn at random below the ephemeral range and checked by listening on it: a
 * port the OS hands out for `listen(0)` comes from the range every outgoing connection of the
 * whole test run draws its local port from, so under load one of them could take it before
 * the process listens ("address already in use"); nothing takes a port below that range
 * unasked.
 */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = LOW + Math.floor(Math.random() * (HIGH - LOW));
    if (await listenable(port, host)) return port;
  }
  throw new Error(`no free port found between ${LOW} and ${HIGH} on ${host} in 50 tries`);
}

function listenable(port: number, host: string): Promise<boolean> {
  const server = net.createServer();
  return new Promise<boolean>((resolve) => {
    server.once('error', () => resolve(false));
    server.listen(port, host, () => server.close(() => resolve(true)));
  });
}
