import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { numberOption } from '../common/common.js';
import { Children } from './children.js';

/*
 * bench/soak gateway — what the OpenAI gateway keeps under churn: a gateway process
 * (gateway-process.ts: prefix-affinity, admission with a tokens-per-minute default, metrics) in
 * front of a fleet process (gateway-fleet.ts: a fake engine and two engine workers) on the file
 * registry. --callers loops send requests for --seconds (150): every one from a new tenant
 * (x-tenant-id), with a new prompt prefix, some for models no worker serves, some with API keys
 * of no tenant, streams read for a few chunks and dropped. Each process samples itself every
 * --sample-ms. Loopback only; every child is killed at the end.
 */
const seconds = numberOption('seconds', 150);
const callers = numberOption('callers', 8);
const sampleMs = numberOption('sample-ms', 5000);
const dir = mkdtempSync(path.join(tmpdir(), 'shuttle-soak-gw-'));
const env = { SOAK_REGISTRY: `file://${dir}`, SOAK_SAMPLE_MS: String(sampleMs) };
const children = new Children();
const tally: Record<string, number> = {};
const count = (key: string): void => {
  tally[key] = (tally[key] ?? 0) + 1;
};

async function caller(url: string, seed: number, end: number): Promise<void> {
  for (let n = seed; performance.now() < end; n++) {
    const kind = n % 6;
    const model = kind === 5 ? `no-such-model-${n}` : `m${n % 2}`;
    const headers: Record<string, string> = { 'content-type': 'application/json', 'x-tenant-id': `tenant-${n}` };
    if (kind === 4) {
      delete headers['x-tenant-id'];
      headers['authorization'] = n % 2 === 0 ? 'Bearer key-gold' : `Bearer key-${n}`;
    }
    const stream = kind < 3;
    const body = JSON.stringify({ model, stream, max_tokens: 16, messages: [{ role: 'user', content: `${`prefix ${n} `.repeat(40)}question` }] });
    const abort = new AbortController();
    try {
      const answer = await fetch(`${url}/v1/chat/completions`, { method: 'POST', headers, body, signal: abort.signal });
      count(String(answer.status));
      if (stream && answer.body !== null && kind === 1) {
        // Read a few chunks, then drop the stream.
        const reader = answer.body.getReader();
        for (let i = 0; i < 3; i++) await reader.read();
        abort.abort();
      } else await answer.arrayBuffer();
    } catch (error) {
      count((error as Error).name);
    }
  }
}

try {
  await children.start('gateway-fleet.js', 'fleet', env);
  const { ready } = await children.start('gateway-process.js', 'gateway', env);
  const url = ready['ready'] as string;
  await new Promise((resolve) => setTimeout(resolve, 2000));
  const end = performance.now() + seconds * 1000;
  await Promise.all(Array.from({ length: callers }, (_, i) => caller(url, i * 1_000_000, end)));
  await new Promise((resolve) => setTimeout(resolve, sampleMs + 500));
} finally {
  children.killAll();
  rmSync(dir, { recursive: true, force: true });
}
console.log(`answers: ${JSON.stringify(tally)}`);
children.print();
