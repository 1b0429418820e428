import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { resolveGatewayAdmission, type GatewayAdmissionOptions } from '../gateway/admission-options.js';
import { UsageError } from './errors.js';

/** The `--admission-*` flags of `shuttle gateway` as commander hands them over: raw strings, checked here. */
export interface AdmissionFlags {
  admissionMaxQueued?: string;
  admissionMaxQueuedTokens?: string;
  admissionMaxWait?: string;
  admissionReserve?: string;
  admissionOvercommit?: string;
  admissionTenant?: string[];
  admissionTenantDefaults?: string;
  admissionApiKeys?: string;
  admissionMaxEmbeddingInputs?: string;
  admissionEmbeddingParallelism?: string;
}

const LIMITS = 'weight, maxConcurrent, tokensPerMinute, maxQueued, maxPriority';

/** Declares the admission flags on `command`, so `--help` lists them. */
export function addAdmissionFlags(command: Command): Command {
  return command
    .option('--admission-max-queued <n>', 'requests waiting for a worker slot, at most (default 1024)')
    .option('--admission-max-queued-tokens <n>', 'estimated tokens of the requests waiting, at most (default 4000000)')
    .option('--admission-max-wait <ms>', 'longest a request waits for a worker slot (default 30000, never beyond --timeout)')
    .option('--admission-reserve <spec>', 'slots kept free for high priorities: priority=5,slots=8')
    .option('--admission-overcommit <spec>', 'let high priorities past a full fleet whose engines schedule by priority: priority=5,slots=8')
    .option(
      '--admission-tenant <spec>',
      `limits of one tenant, repeatable: name,key=value,… (keys: ${LIMITS}), e.g. gold,weight=3`,
      (spec: string, all: string[] = []) => [...all, spec],
    )
    .option('--admission-tenant-defaults <spec>', `limits of every tenant not named: key=value,… (keys: ${LIMITS})`)
    .option('--admission-api-keys <file>', 'a JSON file mapping API keys to tenants, {"sk-…": "gold"} (a file, so keys stay out of the process list)')
    .option('--admission-max-embedding-inputs <n>', 'inputs one embeddings request may have (default 2048)')
    .option('--admission-embedding-parallelism <n>', 'inputs of one embeddings request waiting or running at once (default 8)');
}

/**
 * The gateway's admission options from `flags`. Each flag is checked on its own, first its form
 * and then its values by the gateway's own checks, so a mistake is a UsageError naming the
 * flag, the value given and what is allowed, before anything starts.
 */
export async function admissionOptions(flags: AdmissionFlags): Promise<GatewayAdmissionOptions> {
  const options: GatewayAdmissionOptions = {};
  const take = <K extends keyof GatewayAdmissionOptions>(flag: string, raw: string, key: K, value: GatewayAdmissionOptions[K]): void => {
    try {
      resolveGatewayAdmission({ [key]: value });
    } catch (error) {
      throw new UsageError(`${flag} ${JSON.stringify(raw)}: ${(error as Error).message.replace(/^shuttle-rpc: /, '')}`);
    }
    options[key] = value;
  };
  const integer = (
    flag: string,
    raw: string | undefined,
    key: 'maxQueued' | 'maxQueuedTokens' | 'maxWaitMs' | 'maxEmbeddingInputs' | 'embeddingParallelism',
  ): void => {
    if (raw !== undefined) take(flag, raw, key, numberOf(flag, raw, raw));
  };
  integer('--admission-max-queued', flags.admissionMaxQueued, 'maxQueued');
  integer('--admission-max-queued-tokens', flags.admissionMaxQueuedTokens, 'maxQueuedTokens');
  integer('--admission-max-wait', flags.admissionMaxWait, 'maxWaitMs');
  integer('--admission-max-embedding-inputs', flags.admissionMaxEmbeddingInputs, 'maxEmbeddingInputs');
  integer('--admission-embedding-parallelism', flags.admissionEmbeddingParallelism, 'embeddingParallelism');
  for (const [flag, raw, key] of [
    ['--admission-reserve', flags.admissionReserve, 'reserve'],
    ['--admission-overcommit', flags.admissionOvercommit, 'overcommit'],
  ] as const) {
    if (raw === undefined) continue;
    const fields = pairs(flag, raw, raw.split(','), 'priority=5,slots=8');
    if (fields['priority'] === undefined || fields['slots'] === undefined)
      throw new UsageError(`${flag} ${JSON.stringify(raw)}: give both priority and slots, e.g. priority=5,slots=8`);
    take(flag, raw, key, fields as { priority: number; slots: number });
  }
  if (flags.admissionTenantDefaults !== undefined) {
    const raw = flags.admissionTenantDefaults;
    take(
      '--admission-tenant-defaults',
      raw,
      'tenantDefaults',
      pairs('--admission-tenant-defaults', raw, raw.split(','), 'maxConcurrent=64,tokensPerMinute=2000000'),
    );
  }
  const tenants: Record<string, Record<string, number>> = {};
  for (const raw of flags.admissionTenant ?? []) {
    const [name = '', ...rest] = raw.split(',');
    if (name === '' || name.includes('='))
      throw new UsageError(`--admission-tenant ${JSON.stringify(raw)}: start with the tenant's name, then its limits: name,key=value,… (e.g. gold,weight=3)`);
    if (name in tenants) throw new UsageError(`--admission-tenant ${JSON.stringify(raw)}: tenant ${JSON.stringify(name)} is given twice`);
    tenants[name] = pairs('--admission-tenant', raw, rest, 'gold,weight=3');
    take('--admission-tenant', raw, 'tenants', { [name]: tenants[name] });
  }
  if (Object.keys(tenants).length > 0) options.tenants = tenants;
  if (flags.admissionApiKeys !== undefined) {
    const file = flags.admissionApiKeys;
    let parsed: unknown;
    try {
      parsed = JSON.parse(await readFile(file, 'utf8'));
    } catch (error) {
      throw new UsageError(
        `--admission-api-keys ${JSON.stringify(file)}: cannot read it as JSON (${(error as Error).message}); give a file like {"sk-…": "gold"}`,
      );
    }
    take('--admission-api-keys', file, 'apiKeyTenants', parsed as Record<string, string>);
  }
  return options;
}

/** `key=value` entries with numeric values; a UsageError for any other shape. */
function pairs(flag: string, raw: string, entries: readonly string[], example: string): Record<string, number> {
  const fields: Record<string, number> = {};
  for (const entry of entries) {
    const at = entry.indexOf('=');
    if (at <= 0) throw new UsageError(`${flag} ${JSON.stringify(raw)}: expected key=value entries separated by commas, e.g. ${example}`);
    const key = entry.slice(0, at).trim();
    if (key in fields) throw new UsageError(`${flag} ${JSON.stringify(raw)}: ${key} is given twice`);
    fields[key] = numberOf(flag, raw, entry.slice(at + 1).trim(), key);
  }
  return fields;
}

/** A decimal number literal (`3`, `0.5`); a UsageError naming the flag otherwise. */
function numberOf(flag: string, raw: string, text: string, key?: string): number {
  if (!/^-?\d+(\.\d+)?$/.test(text))
    throw new UsageError(`${flag} ${JSON.stringify(raw)}: ${key === undefined ? '' : `${key} `}must be a number, got ${JSON.stringify(text)}`);
  return Number(text);
}
