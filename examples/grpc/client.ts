import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

/*
 * A gRPC client with no shuttle code: @grpc/grpc-js and inference.proto, nothing else — what a
 * team in any language writes from the .proto. `node client.js --address 127.0.0.1:50051
 * --prompt "..."` streams the tokens of one generation as they arrive, then prints the usage
 * from the `shuttle-trailer-bin` trailer and an embedding, as one JSON line.
 */
const { values } = parseArgs({
  options: {
    address: { type: 'string', default: '127.0.0.1:50051' },
    prompt: { type: 'string', default: 'Explain prefix caching in one sentence.' },
    'max-tokens': { type: 'string', default: '12' },
  },
});
const proto = fileURLToPath(new URL('../../../examples/grpc/inference.proto', import.meta.url));
const { inference } = grpc.loadPackageDefinition(protoLoader.loadSync(proto, { defaults: true })) as unknown as {
  inference: { LLM: grpc.ServiceClientConstructor };
};
const llm = new inference.LLM(values.address!, grpc.credentials.createInsecure()) as unknown as grpc.Client & {
  Generate(request: unknown, options: grpc.CallOptions): grpc.ClientReadableStream<{ text: string }>;
  Embed(request: unknown, options: grpc.CallOptions, callback: (error: grpc.ServiceError | null, value?: { values: number[] }) => void): void;
};

const tokens: string[] = [];
const call = llm.Generate({ prompt: values.prompt, maxTokens: Number(values['max-tokens']) }, { deadline: Date.now() + 10_000 });
call.on('data', (token: { text: string }) => {
  tokens.push(token.text);
  process.stderr.write(token.text);
});
const status = await new Promise<grpc.StatusObject>((resolve) => call.on('status', resolve));
call.on('error', () => {});
process.stderr.write('\n');
if (status.code !== grpc.status.OK) throw new Error(`Generate failed: ${grpc.status[status.code]} ${status.details}`);
const trailer = status.metadata.get('shuttle-trailer-bin')[0];
const usage: unknown = trailer === undefined ? null : JSON.parse(String(trailer));
const embedding = await new Promise<number[]>((resolve, reject) =>
  llm.Embed({ text: values.prompt }, { deadline: Date.now() + 5000 }, (error, value) => (error ? reject(error) : resolve(value!.values))),
);
console.log(JSON.stringify({ tokens, usage, embedding: embedding.length }));
llm.close();
