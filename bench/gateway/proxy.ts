import http from 'node:http';
import type { AddressInfo } from 'node:net';

/*
 * bench:gateway's baseline: the least a Node HTTP gateway can do — pipe each request to the
 * engine and the answer back (keep-alive agent, no parsing, no routing, no cancellation).
 */
const target = new URL(process.argv[2]!);
const agent = new http.Agent({ keepAlive: true, maxSockets: 1024 });
const server = http.createServer((request, response) => {
  const upstream = http.request(
    { host: target.hostname, port: target.port, path: request.url, method: request.method, headers: request.headers, agent },
    (answer) => {
      response.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(response);
    },
  );
  upstream.on('error', () => response.destroy());
  request.pipe(upstream);
});
server.listen(0, '127.0.0.1', () => process.stdout.write(`${JSON.stringify({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1` })}\n`));
process.once('SIGTERM', () => process.exit(0));
