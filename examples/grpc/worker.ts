import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { createServer } from 'shuttle-rpc';
import { SimEngine, realClock } from 'shuttle-rpc/testing';
import { LlmWorker } from '../inference/llm.js';

/*
 * The simulated GPU worker of examples/inference, served over gRPC as well:
 * `node worker.js --grpc-port 50051`. Shuttle consumers find it in the registry as usual (tcp,
 * or grpc when they are configured for it); any gRPC client calls it on the gRPC port with
 * nothing but inference.proto (see README.md here). Prints {"ready": url, "grpc": port}.
 */
const { values } = parseArgs({
  options: {
    name: { type: 'string', default: `grpc-worker-${process.pid}` },
    'grpc-port': { type: 'string', default: '50051' },
  },
});
const proto = fileURLToPath(new URL('../../../examples/grpc/inference.proto', import.meta.url));
const engine = new SimEngine({ slots: 8, kvCapacityTokens: 200_000 }, realClock);
const server = await createServer({
  services: [new LlmWorker(engine, values.name!)],
  // tcp on a free port for shuttle consumers, gRPC beside it on --grpc-port for everyone else.
  extraTransports: [{ transport: { type: 'grpc', options: { protoFiles: [proto] } }, port: Number(values['grpc-port']) }],
  metadata: { model: 'llama-3-8b', gpu: 'H100', slots: 8, name: values.name },
  load: () => engine.load(),
  shutdownOnSignals: true,
});
const grpcPort = server.endpoints.find((endpoint) => endpoint.protocol === 'grpc')!.port;
console.log(JSON.stringify({ ready: server.url, grpc: grpcPort, name: values.name }));
