import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gateway } from 'shuttle-rpc/gateway';
import { startGatewayFleet, type GatewayFleet } from '../helpers/gateway-fleet.js';

/*
 * Random request bodies against a live gateway (a fake engine, an engine worker, the gateway,
 * all real on loopback): a valid request with one or two fields replaced by arbitrary JSON, or
 * arbitrary JSON as the whole body, with the headers the gateway reads (tenant, priority, key,
 * request id) set to arbitrary printable values. Whatever arrives, the answer is a success or a 4xx in
 * OpenAI's error shape — never a 5xx (the gateway's own failure), never a hang, never an
 * internal detail — and the gateway answers a plain request normally afterwards.
 */
let fleet: GatewayFleet | undefined;
let gateway: Gateway;

beforeAll(async () => {
  fleet = await startGatewayFleet({ engine: { models: ['m'], tokens: 4 }, gateway: { log: false } });
  ({ gateway } = fleet);
}, 30_000);

afterAll(async () => {
  await fleet?.close();
});

const BASES: Record<string, Record<string, unknown>> = {
  '/v1/chat/completions': { model: 'm', messages: [{ role: 'user', content: 'hello' }], max_tokens: 4 },
  '/v1/completions': { model: 'm', prompt: 'hello', max_tokens: 4 },
  '/v1/embeddings': { model: 'm', input: ['hello', 'world'] },
};

/** Fields clients send, and a few nobody should. */
const FIELDS = [
  'model',
  'messages',
  'prompt',
  'input',
  'max_tokens',
  'max_completion_tokens',
  'stream',
  'stream_options',
  'temperature',
  'top_p',
  'n',
  'stop',
  'seed',
  'user',
  'logprobs',
  'top_logprobs',
  'tools',
  'tool_choice',
  'response_format',
  'encoding_format',
  'dimensions',
  'presence_penalty',
  'frequency_penalty',
  'logit_bias',
  '__proto__',
  'constructor',
];

/** A JSON value that includes the shapes that break code: deep nesting, huge numbers, odd strings. */
const jsonValue = fc.oneof(
  fc.jsonValue({ maxDepth: 4 }),
  fc.constantFrom(-1, 0, 1e308, -0, 2 ** 53 + 1, 0.5, '', '\u0000', '\ud800', 'x'.repeat(10_000), [], {}, [[]], [{}], null, true),
  fc.array(fc.record({ role: fc.constantFrom('user', 'system', 'assistant', 'tool', 'evil', ''), content: fc.jsonValue({ maxDepth: 2 }) }), { maxLength: 4 }),
);

/** Headers the gateway reads, with values a client may send (printable, as HTTP allows). */
const headers = fc.dictionary(
  fc.constantFrom('x-tenant-id', 'x-priority', 'authorization', 'x-request-id', 'accept', 'accept-encoding'),
  fc.oneof(
    fc.string({ unit: fc.constantFrom(...' !"#%&*+,-./09:;<=>?@AZ[]_az{|}~'.split('')), maxLength: 40 }),
    fc.constantFrom('Bearer ', '-1', '1e9', 'x'.repeat(4000)),
  ),
  { maxKeys: 3 },
);

const request = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      path: fc.constantFrom(...Object.keys(BASES)),
      changes: fc.array(fc.tuple(fc.constantFrom(...FIELDS), jsonValue), { minLength: 1, maxLength: 2 }),
      headers,
    }),
  },
  { weight: 1, arbitrary: fc.record({ path: fc.constantFrom(...Object.keys(BASES)), whole: jsonValue, headers }) },
);

interface Sent {
  path: string;
  headers?: Record<string, string>;
  changes?: Array<[string, unknown]>;
  whole?: unknown;
}

function bodyOf(sent: Sent): string {
  if (sent.whole !== undefined) return JSON.stringify(sent.whole);
  // Built as text so that a "__proto__" key is sent as a key, as an attacker would send it.
  const entries = Object.entries(BASES[sent.path]!).filter(([key]) => !sent.changes!.some(([changed]) => changed === key));
  for (const [key, value] of sent.changes!) entries.push([key, value]);
  return `{${entries.map(([key, value]) => `${JSON.stringify(key)}:${JSON.stringify(value) ?? 'null'}`).join(',')}}`;
}

/** Sends `sent` and reads the whole answer (a stream to its end), failing after 10 s. */
async function send(sent: Sent): Promise<{ status: number; text: string; type: string }> {
  const response = await fetch(`${gateway.url}${sent.path}`, {
    method: 'POST',
    headers: { ...sent.headers, 'content-type': 'application/json' },
    body: bodyOf(sent),
    signal: AbortSignal.timeout(10_000),
  });
  return { status: response.status, text: await response.text(), type: response.headers.get('content-type') ?? '' };
}

describe('random request bodies against a live gateway', () => {
  it('every answer is a success or a 4xx in OpenAI shape, never a 5xx, a hang or an internal detail', { timeout: 120_000 }, async () => {
    const statuses = new Map<number, number>();
    await fc.assert(
      fc.asyncProperty(request, async (sent) => {
        const answer = await send(sent);
        statuses.set(answer.status, (statuses.get(answer.status) ?? 0) + 1);
        const shown = `${answer.status} for ${JSON.stringify(sent.headers)} ${bodyOf(sent).slice(0, 300)}: ${answer.text.slice(0, 300)}`;
        expect(answer.status < 500, shown).toBe(true);
        expect(answer.text, shown).not.toMatch(/FST_|statusCode|HPE_|\bat .+:\d+:\d+|TypeError|RangeError|Cannot read prop/);
        if (answer.status >= 400) {
          const error = (JSON.parse(answer.text) as { error: Record<string, unknown> }).error;
          expect(Object.keys(error).sort(), shown).toEqual(['code', 'message', 'param', 'type']);
          expect(typeof error['message'], shown).toBe('string');
        } else if (answer.type.startsWith('text/event-stream')) {
          expect(answer.text.trimEnd().endsWith('data: [DONE]'), shown).toBe(true);
        } else {
          expect(() => JSON.parse(answer.text), shown).not.toThrow();
        }
      }),
      { numRuns: 400, seed: 2026, endOnFailure: true },
    );
    console.log('gateway fuzz statuses:', Object.fromEntries(statuses));
    // Both paths were reached: some bodies were served, some refused.
    expect(statuses.get(200) ?? 0).toBeGreaterThan(0);
    expect([...statuses].filter(([status]) => status >= 400).length).toBeGreaterThan(0);
    // And the gateway still answers a plain request.
    const plain = await send({ path: '/v1/chat/completions', changes: [['max_tokens', 2]] });
    expect(plain.status).toBe(200);
  });
});
