import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { Logger } from '../../../src/log/log.js';
import { PromptTokens } from '../../../src/engine/prompt-tokens.js';
import { closeUpstream, createUpstream } from '../../../src/engine/upstream.js';
import { waitUntil } from '../../helpers/wait.js';

/*
 * Asking an engine's /tokenize for a prompt's token ids, against an HTTP server on loopback
 * that answers as a broken or hostile engine would: failures are counted and said (once a
 * minute), an answer too large is refused before it is parsed, a missing endpoint is asked once.
 */
let cleanup: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const step of cleanup.reverse()) await step();
  cleanup = [];
});

async function engine(answer: (response: http.ServerResponse) => void): Promise<{ url: string; asked: () => number }> {
  let asked = 0;
  const server = http.createServer((request, response) => {
    asked++;
    request.resume();
    request.once('end', () => answer(response));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanup.push(() => new Promise<void>((resolve) => server.close(() => resolve())).then(() => server.closeAllConnections()));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, asked: () => asked };
}

function tokens(url: string) {
  const recorded: unknown[] = [];
  const warnings: string[] = [];
  let failures = 0;
  const upstream = createUpstream(url, undefined);
  cleanup.push(() => closeUpstream(upstream));
  const log = { warn: (message: string) => warnings.push(message), debug: () => {} } as unknown as Logger;
  const asker = new PromptTokens(upstream, { recordPrompt: (_text, ids) => recorded.push(ids), countTokenizeFailure: () => failures++ }, log);
  return { asker, recorded, warnings, failures: () => failures };
}

const request = { messages: [{ role: 'user', content: 'hello' }] };

describe('PromptTokens', () => {
  it('records the token ids /tokenize answers', async () => {
    const server = await engine((response) => response.end(JSON.stringify({ tokens: [1, 2, 3], count: 3 })));
    const { asker, recorded } = tokens(server.url);
    asker.ask(request, 'm');
    await waitUntil(() => recorded.length === 1, 'the ids to be recorded');
    expect(recorded).toEqual([[1, 2, 3]]);
  });

  it('counts each failure and says the first, not every one', async () => {
    const server = await engine((response) => {
      response.statusCode = 500;
      response.end('{"error":{"message":"tokenizer crashed"}}');
    });
    const { asker, warnings, failures } = tokens(server.url);
    for (let i = 0; i < 3; i++) {
      asker.ask(request, 'm');
      await waitUntil(() => failures() === i + 1, `failure ${i + 1} to be counted`);
    }
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/cannot get a prompt's token ids from the engine's \/tokenize.*500.*tokenizer crashed/);
    expect(asker.available).toBe(true);
  });

  it('refuses an answer over 8 MiB without parsing it', async () => {
    const huge = `{"tokens":[${'1,'.repeat(5 * 1024 * 1024)}1]}`;
    const server = await engine((response) => response.end(huge));
    const { asker, recorded, failures } = tokens(server.url);
    asker.ask(request, 'm');
    await waitUntil(() => failures() === 1, 'the answer to be refused');
    expect(recorded).toEqual([]);
  });

  it('asks an engine without /tokenize once', async () => {
    const server = await engine((response) => {
      response.statusCode = 404;
      response.end('{"detail":"Not Found"}');
    });
    const { asker, warnings } = tokens(server.url);
    asker.ask(request, 'm');
    await waitUntil(() => !asker.available, 'the endpoint to be given up');
    for (let i = 0; i < 5; i++) asker.ask(request, 'm');
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(server.asked()).toBe(1);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/has no \/tokenize/);
  });
});
