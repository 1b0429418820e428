import { describe, expect, it } from 'vitest';
import { startEngineWorker } from '../../../src/engine/engine.js';
import { startGateway } from '../../../src/gateway/gateway.js';

describe('bridge options', () => {
  it('startGateway names the bad key and what is allowed, before starting anything', async () => {
    await expect(startGateway({ prot: 8080 } as never)).rejects.toThrow(/unknown option gateway\.prot \(known: port, host, client/);
    await expect(startGateway({ port: 70000 })).rejects.toThrow(/invalid gateway port: 70000 \(allowed: an integer from 0 to 65535\)/);
    await expect(startGateway({ timeoutMs: 0 })).rejects.toThrow(/invalid gateway timeoutMs: 0/);
  });

  it('startGateway refuses an empty or blank API key, which would let requests without one in', async () => {
    for (const apiKey of ['', '   ', 'two words', 'tab\there']) {
      await expect(startGateway({ apiKey })).rejects.toThrow(/invalid gateway apiKey: .* \(allowed: a non-empty string without spaces or control characters/);
    }
    await expect(startGateway({ admission: { apiKeyTenants: { '': 'gold' } } })).rejects.toThrow(
      /apiKeyTenants: entry 1 \(a key of 0 characters\): the API key is empty or blank/,
    );
    await expect(startGateway({ admission: { apiKeyTenants: { 'sk-a': 'gold', 'sk-b': ' ' } } })).rejects.toThrow(/entry 2 .*got " "/);
  });

  it('startGateway refuses CORS origins that are not origins', async () => {
    for (const origins of [[], ['https://app.example.com/path'], ['app.example.com'], [5], 'https://a.b']) {
      await expect(startGateway({ cors: { origins } as never })).rejects.toThrow(/invalid gateway cors\.origins/);
    }
  });

  it('startEngineWorker likewise', async () => {
    await expect(startEngineWorker({ url: 'http://127.0.0.1:1/v1', slot: 4 } as never)).rejects.toThrow(
      /unknown option engine worker\.slot \(known: url, apiKey/,
    );
    await expect(startEngineWorker({ url: 'localhost:8000' })).rejects.toThrow(
      /invalid engine worker url: "localhost:8000" \(allowed: an http:\/\/ or https:\/\/ URL/,
    );
    await expect(startEngineWorker({ url: 'http://127.0.0.1:1/v1', slots: 0 })).rejects.toThrow(
      /invalid engine worker slots: 0 \(allowed: an integer from 1 to 1000000\)/,
    );
    await expect(startEngineWorker({ url: 'http://127.0.0.1:1/v1', models: ['a', ''] })).rejects.toThrow(/invalid engine worker models/);
    await expect(startEngineWorker({ url: 'http://127.0.0.1:1/v1', models: ['a'], metrics: 'tgi' as never })).rejects.toThrow(
      /engine metrics must be 'vllm', 'sglang', 'auto'/,
    );
    await expect(startEngineWorker({ url: 'http://127.0.0.1:1/v1', models: ['a'], priority: 'trtllm' as never })).rejects.toThrow(
      /invalid engine worker priority: "trtllm" \(allowed: 'none', 'vllm', 'sglang'\)/,
    );
  });
});
