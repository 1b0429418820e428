import moleculer from 'moleculer';
import type { BenchSystem } from './systems.js';

/*
 * Moleculer 0.14 (the line that runs on Node 20), the framework a Node user would otherwise pick
 * for RPC between services: its TCP transporter (no broker process), discovery off in favour of
 * a static address (the bench knows the port), logging off, everything else at its defaults.
 * Two variants: its default serializer (JSON) and its MessagePack serializer (msgpack5).
 */

const { ServiceBroker } = moleculer;
type Broker = InstanceType<typeof ServiceBroker>;

function broker(nodeID: string, serializer: 'JSON' | 'MsgPack', urls?: string[]): Broker {
  return new ServiceBroker({
    nodeID,
    logger: false,
    serializer,
    transporter: { type: 'TCP', options: { udpDiscovery: false, port: 0, ...(urls === undefined ? {} : { urls }) } },
  });
}

/** The port the transporter's TCP server listens on (it binds port 0 and records the real one). */
function listeningPort(server: Broker): number {
  const port = (server.transit as unknown as { tx: { opts: { port: number } } }).tx.opts.port;
  if (!Number.isInteger(port) || port <= 0) throw new Error(`moleculer did not report its TCP port (got ${String(port)})`);
  return port;
}

function moleculerSystem(serializer: 'JSON' | 'MsgPack'): BenchSystem {
  return {
    async serve() {
      const server = broker('bench-server', serializer);
      server.createService({ name: 'bench', actions: { echo: (ctx: { params: { payload: unknown } }) => ctx.params.payload } });
      await server.start();
      return { port: listeningPort(server), close: () => server.stop() };
    },
    async connect(port) {
      const client = broker(`bench-client-${process.pid}`, serializer, [`127.0.0.1:${port}/bench-server`]);
      await client.start();
      // Discovery is gossip over the static address: it can take seconds on a busy machine.
      await client.waitForServices('bench', 30_000);
      return {
        call: (payload) => client.call('bench.echo', { payload }),
        close: () => client.stop(),
      };
    },
  };
}

/** Moleculer with its default serializer (JSON: a binary payload travels as an array of numbers). */
export const moleculerJson = moleculerSystem('JSON');
/** Moleculer with its MessagePack serializer. */
export const moleculerMsgpack = moleculerSystem('MsgPack');
