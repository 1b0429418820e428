import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCliCaptured as run } from '../../helpers/cli-run.js';

/*
 * Every server the command starts — the gateway, a worker's provider, their admin servers —
 * says which one cannot listen, where, why in words and what to do, as one line with exit 1,
 * instead of Node's `listen EADDRINUSE: address already in use`.
 */
let taken: net.Server;
let port: number;
beforeAll(async () => {
  taken = net.createServer();
  await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
  port = (taken.address() as net.AddressInfo).port;
});
afterAll(async () => {
  await new Promise((resolve) => taken.close(resolve));
});

const registry = ['--registry', 'memory://listen-failures'];
const inUse = (what: string): string =>
  `shuttle: ${what} cannot listen on 127.0.0.1:${port}: another process listens there (EADDRINUSE); choose another port, or port 0 for any free one\n`;

describe('a port or address the command cannot have', () => {
  it('names the gateway, the port in use and the way out', async () => {
    expect(await run(['gateway', '--port', String(port), ...registry])).toEqual({ code: 1, written: inUse('the gateway') });
  });

  it("names the gateway's admin server when --admin-port is taken", async () => {
    expect(await run(['gateway', '--port', '0', '--admin-port', String(port), ...registry])).toEqual({
      code: 1,
      written: inUse('the admin server (/metrics, /health)'),
    });
  });

  it("names a worker's admin server when --admin-port is taken", async () => {
    const worker = ['worker', '--url', 'http://127.0.0.1:1/v1', '--model', 'm', '--metrics-url', 'none', '--health-url', 'none', '--port', '0'];
    expect(await run([...worker, '--admin-port', String(port), ...registry])).toEqual({ code: 1, written: inUse('the admin server (/metrics, /health)') });
  });

  it('says a --host that does not resolve is no address of this machine', async () => {
    const { code, written } = await run(['gateway', '--port', '0', '--host', 'no-such-host.invalid', ...registry]);
    expect(code).toBe(1);
    expect(written).toMatch(
      /^shuttle: the gateway cannot listen on no-such-host\.invalid:0: the host name no-such-host\.invalid does not resolve \((ENOTFOUND|EAI_AGAIN)\)/,
    );
  });
});

describe('a registry the gateway cannot read at start', () => {
  it('refuses to start, naming the registry and why, instead of serving 503s', async () => {
    // An etcd endpoint that accepts connections and never answers.
    const sockets = new Set<net.Socket>();
    const silent = net.createServer((socket) => {
      sockets.add(socket);
      socket.on('error', () => {});
    });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const silentPort = (silent.address() as net.AddressInfo).port;
    try {
      const started = Date.now();
      const { code, written } = await run(['gateway', '--port', '0', '--registry', `etcd://127.0.0.1:${silentPort}`]);
      expect(code).toBe(1);
      expect(written).toBe(
        `shuttle: the gateway cannot read its registry, so it would know no workers: cannot find providers of inference.LLM: etcd registry etcd://127.0.0.1:${silentPort} is unreachable: no answer within 3000 ms: etcd is stalled, overloaded or cut off\n`,
      );
      expect(Date.now() - started).toBeLessThan(8000);
    } finally {
      for (const socket of sockets) socket.destroy();
      silent.close();
    }
  }, 15_000);
});
