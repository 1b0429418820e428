import { readdirSync, readFileSync, readlinkSync } from 'node:fs';

/**
 * Open TCP sockets of this process: file descriptors whose socket is in /proc/net/tcp(6) —
 * only those to `remotePort` when given. Sockets of other processes in the same network
 * namespace (an etcd server's connection to itself, say) are not counted.
 */
export function openSockets(remotePort?: number): number {
  const tcpInodes = new Set<string>();
  for (const table of ['/proc/self/net/tcp', '/proc/self/net/tcp6']) {
    try {
      for (const line of readFileSync(table, 'utf8').split('\n').slice(1)) {
        const fields = line.trim().split(/\s+/);
        const inode = fields[9];
        const peerPort = Number.parseInt(fields[2]?.split(':').at(-1) ?? '0', 16);
        if (inode !== undefined && inode !== '0' && (remotePort === undefined || peerPort === remotePort)) tcpInodes.add(inode);
      }
    } catch {
      // no IPv6 table on this machine
    }
  }
  let sockets = 0;
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      const match = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/self/fd/${fd}`));
      if (match !== null && tcpInodes.has(match[1]!)) sockets++;
    } catch {
      // closed between the listing and the look
    }
  }
  return sockets;
}
