import { startFakeEngine } from 'shuttle-rpc/testing';

/* bench:gateway's engine process: a fake OpenAI-compatible engine, tokens back to back. */
const engine = await startFakeEngine({ models: ['bench'], tokens: 1_000_000, tokenDelayMs: 0 });
process.stdout.write(`${JSON.stringify({ url: engine.url })}\n`);
process.once('SIGTERM', () => void engine.close().then(() => process.exit(0)));
