import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { admissionOptions, type AdmissionFlags } from '../../../src/cli/admission-flags.js';
import { runCliCaptured } from '../../helpers/cli-run.js';
import { tempDir } from '../../helpers/tmp.js';

let dir: { dir: string; remove(): Promise<void> };
beforeAll(async () => {
  dir = await tempDir();
});
afterAll(async () => {
  await dir?.remove();
});

/** The error `flags` are refused with. */
const refusal = (flags: AdmissionFlags): Promise<string> =>
  admissionOptions(flags).then(
    () => 'accepted',
    (error: Error) => `${error.constructor.name}: ${error.message}`,
  );

describe('shuttle gateway --admission-* flags', () => {
  it('become the gateway admission options', async () => {
    const keys = join(dir.dir, 'keys.json');
    await writeFile(keys, JSON.stringify({ 'sk-gold': 'gold', 'sk-free': 'free' }));
    expect(
      await admissionOptions({
        admissionMaxQueued: '256',
        admissionMaxQueuedTokens: '1000000',
        admissionMaxWait: '5000',
        admissionReserve: 'priority=9,slots=2',
        admissionOvercommit: 'priority=5, slots=8',
        admissionTenant: ['gold,weight=3,maxConcurrent=64', 'free,weight=0.5,tokensPerMinute=100000,maxQueued=16'],
        admissionTenantDefaults: 'maxConcurrent=32',
        admissionApiKeys: keys,
        admissionMaxEmbeddingInputs: '512',
        admissionEmbeddingParallelism: '4',
      }),
    ).toEqual({
      maxQueued: 256,
      maxQueuedTokens: 1_000_000,
      maxWaitMs: 5000,
      reserve: { priority: 9, slots: 2 },
      overcommit: { priority: 5, slots: 8 },
      tenants: { gold: { weight: 3, maxConcurrent: 64 }, free: { weight: 0.5, tokensPerMinute: 100_000, maxQueued: 16 } },
      tenantDefaults: { maxConcurrent: 32 },
      apiKeyTenants: { 'sk-gold': 'gold', 'sk-free': 'free' },
      maxEmbeddingInputs: 512,
      embeddingParallelism: 4,
    });
    expect(await admissionOptions({})).toEqual({});
  });

  it('refuse a bad value naming the flag, the value and what is allowed', async () => {
    expect(await refusal({ admissionMaxQueued: 'lots' })).toBe('UsageError: --admission-max-queued "lots": must be a number, got "lots"');
    expect(await refusal({ admissionMaxQueued: '-1' })).toBe(
      'UsageError: --admission-max-queued "-1": invalid admission maxQueued: -1 (allowed: an integer from 0 to 1000000)',
    );
    expect(await refusal({ admissionMaxQueuedTokens: '1.5' })).toMatch(
      /^UsageError: --admission-max-queued-tokens "1.5": invalid admission maxQueuedTokens: 1.5 \(allowed: an integer from 0 to/,
    );
    expect(await refusal({ admissionMaxWait: '0' })).toBe(
      'UsageError: --admission-max-wait "0": invalid gateway admission maxWaitMs: 0 (allowed: an integer from 1 to 2147483647)',
    );
    expect(await refusal({ admissionMaxEmbeddingInputs: '5000' })).toBe(
      'UsageError: --admission-max-embedding-inputs "5000": invalid gateway admission maxEmbeddingInputs: 5000 (allowed: an integer from 1 to 2048)',
    );
    expect(await refusal({ admissionEmbeddingParallelism: '0' })).toMatch(
      /^UsageError: --admission-embedding-parallelism "0": invalid gateway admission embeddingParallelism: 0 \(allowed: an integer from 1 to 1024\)$/,
    );
  });

  it('refuse a malformed or out-of-range reserve and overcommit, saying the form', async () => {
    expect(await refusal({ admissionReserve: '5:8' })).toBe(
      'UsageError: --admission-reserve "5:8": expected key=value entries separated by commas, e.g. priority=5,slots=8',
    );
    expect(await refusal({ admissionReserve: 'priority=5' })).toBe(
      'UsageError: --admission-reserve "priority=5": give both priority and slots, e.g. priority=5,slots=8',
    );
    expect(await refusal({ admissionReserve: 'priority=10,slots=8' })).toBe(
      'UsageError: --admission-reserve "priority=10,slots=8": invalid admission reserve.priority: 10 (allowed: an integer from 1 to 9)',
    );
    expect(await refusal({ admissionOvercommit: 'priority=5,slots=0' })).toBe(
      'UsageError: --admission-overcommit "priority=5,slots=0": invalid admission overcommit.slots: 0 (allowed: an integer from 1 to 1000000)',
    );
    expect(await refusal({ admissionOvercommit: 'priority=5,slots=2,calls=1' })).toMatch(
      /^UsageError: --admission-overcommit "priority=5,slots=2,calls=1": unknown option admission overcommit\.calls \(known: priority, slots\)$/,
    );
    expect(await refusal({ admissionOvercommit: 'priority=high,slots=2' })).toBe(
      'UsageError: --admission-overcommit "priority=high,slots=2": priority must be a number, got "high"',
    );
  });

  it('refuse a bad tenant, tenant defaults or API key file', async () => {
    expect(await refusal({ admissionTenant: ['weight=3'] })).toBe(
      'UsageError: --admission-tenant "weight=3": start with the tenant\'s name, then its limits: name,key=value,… (e.g. gold,weight=3)',
    );
    expect(await refusal({ admissionTenant: ['gold,burst=3'] })).toMatch(
      /^UsageError: --admission-tenant "gold,burst=3": unknown option admission tenants\.gold\.burst \(known: weight, maxConcurrent, tokensPerMinute, maxQueued, maxPriority\)$/,
    );
    expect(await refusal({ admissionTenant: ['gold,weight=0'] })).toBe(
      'UsageError: --admission-tenant "gold,weight=0": invalid admission tenants.gold.weight: 0 (allowed: a number above 0, at most 1000000)',
    );
    expect(await refusal({ admissionTenant: ['gold,weight=2', 'gold,weight=3'] })).toBe(
      'UsageError: --admission-tenant "gold,weight=3": tenant "gold" is given twice',
    );
    expect(await refusal({ admissionTenantDefaults: 'maxConcurrent=1.5' })).toMatch(
      /^UsageError: --admission-tenant-defaults "maxConcurrent=1.5": invalid admission tenantDefaults\.maxConcurrent: 1.5 \(allowed: an integer from 1 to 1000000\)$/,
    );
    expect(await refusal({ admissionApiKeys: join(dir.dir, 'missing.json') })).toMatch(
      /^UsageError: --admission-api-keys ".*missing\.json": cannot read it as JSON \(ENOENT.*\); give a file like \{"sk-…": "gold"\}$/,
    );
    const numbers = join(dir.dir, 'numbers.json');
    // The bad entry is named by its place and its key's length: the keys are secrets.
    await writeFile(numbers, '{"sk-gold-1": "gold", "sk-secret-2": 3}');
    const refused = await refusal({ admissionApiKeys: numbers });
    expect(refused).toMatch(
      /^UsageError: --admission-api-keys ".*numbers\.json": gateway admission apiKeyTenants: entry 2 \(a key of 11 characters\): its tenant must be a non-empty string, the tenant's name \(as in tenants\), got number$/,
    );
    expect(refused).not.toContain('sk-secret-2');
    await writeFile(numbers, '["sk-1"]');
    expect(await refusal({ admissionApiKeys: numbers })).toMatch(/invalid gateway admission apiKeyTenants: array\(1\) \(allowed: an object of API key/);
  });

  it('`shuttle gateway` exits 2 on a bad flag before starting anything, and lists the flags in its help', async () => {
    const refused = await runCliCaptured(['gateway', '--port', '0', '--admission-overcommit', 'priority=0,slots=4']);
    expect(refused.code).toBe(2);
    expect(refused.written).toBe(
      'shuttle: --admission-overcommit "priority=0,slots=4": invalid admission overcommit.priority: 0 (allowed: an integer from 1 to 9)\n',
    );
    const help = await runCliCaptured(['gateway', '--help']);
    expect(help.code).toBe(0);
    for (const flag of ['--admission-max-queued', '--admission-reserve', '--admission-overcommit', '--admission-tenant ', '--admission-api-keys'])
      expect(help.written).toContain(flag);
  });
});
