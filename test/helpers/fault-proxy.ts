import net from 'node:net';

/**
 * A TCP proxy on loopback for fault tests (in the spirit of etcd3's test Proxy): forwards to a
 * target until `block()`, which cuts every open connection and refuses new ones (closing them
 * at once) until `unblock()`.
 */
export interface FaultProxy {
  readonly port: number;
  block(): void;
  unblock(): void;
  close(): Promise<void>;
}

export async function startFaultProxy(targetPort: number, targetHost = '127.0.0.1'): Promise<FaultProxy> {
  let blocked = false;
  const pairs = new Set<[net.Socket, net.Socket]>();
  const server = net.createServer((client) => {
    if (blocked) {
      client.destroy();
      return;
    }
    const upstream = net.connect({ host: targetHost, port: targetPort });
    const pair: [net.Socket, net.Socket] = [client, upstream];
    pairs.add(pair);
    const cut = (): void => {
      client.destroy();
      upstream.destroy();
      pairs.delete(pair);
    };
    client.on('error', cut).on('close', cut);
    upstream.on('error', cut).on('close', cut);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const block = (): void => {
    blocked = true;
    for (const [client, upstream] of pairs) {
      client.destroy();
      upstream.destroy();
    }
    pairs.clear();
  };
  return {
    port: (server.address() as net.AddressInfo).port,
    block,
    unblock() {
      blocked = false;
    },
    async close() {
      block();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
