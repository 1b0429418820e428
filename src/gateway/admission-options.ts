import type { AdmissionOptions } from '../admission/admission.js';
import { resolveOptions } from '../admission/options.js';
import { checkInt, checkKnownKeys, invalidOption, MAX_TIMER_MS, optionKeys } from '../common/validate.js';

/** The gateway's `admission` option: the queue's bounds and tenants, and how requests map to them. */
export interface GatewayAdmissionOptions
  extends Pick<AdmissionOptions, 'maxQueued' | 'maxQueuedTokens' | 'tenants' | 'tenantDefaults' | 'reserve' | 'overcommit'> {
  /** Longest a request waits for a free worker slot, ms (never beyond the gateway's timeoutMs); 30 s by default. */
  maxWaitMs?: number;
  /** Bearer token → tenant; a request with a listed token is charged to its tenant whatever its headers say. */
  apiKeyTenants?: Readonly<Record<string, string>>;
  /** Inputs one embeddings request may have; 2048 by default (OpenAI's limit). */
  maxEmbeddingInputs?: number;
  /** Inputs of one embeddings request waiting or running at once; 8 by default. */
  embeddingParallelism?: number;
}

/** The gateway-side options checked, with defaults; the queue's own are checked too but kept as given. */
export interface ResolvedGatewayAdmission {
  readonly maxWaitMs: number;
  readonly maxEmbeddingInputs: number;
  readonly embeddingParallelism: number;
  readonly apiKeyTenants: ReadonlyMap<string, string>;
}

const KEYS = optionKeys<GatewayAdmissionOptions>()([
  'maxQueued',
  'maxQueuedTokens',
  'tenants',
  'tenantDefaults',
  'reserve',
  'overcommit',
  'maxWaitMs',
  'apiKeyTenants',
  'maxEmbeddingInputs',
  'embeddingParallelism',
]);

/**
 * Checks every field of `options` (the queue's through the queue's own checks), throwing a
 * TypeError that names the field, the bad value and what is allowed; it needs no client, so
 * the command line can check its flags before starting anything.
 */
export function resolveGatewayAdmission(options: GatewayAdmissionOptions): ResolvedGatewayAdmission {
  if (options === null || typeof options !== 'object') throw invalidOption('gateway admission', options, 'an object');
  checkKnownKeys('gateway admission', options, KEYS);
  const keys = options.apiKeyTenants ?? {};
  if (keys === null || typeof keys !== 'object' || Array.isArray(keys)) {
    throw invalidOption('gateway admission apiKeyTenants', keys, 'an object of API key (non-empty) to tenant name (non-empty)');
  }
  checkKeyTenants(keys);
  const { maxQueued, maxQueuedTokens, tenants, tenantDefaults, reserve, overcommit } = options;
  resolveOptions({ capacity: () => 0, maxQueued, maxQueuedTokens, tenants, tenantDefaults, reserve, overcommit });
  return {
    maxWaitMs: checkInt('gateway admission maxWaitMs', options.maxWaitMs, 1, MAX_TIMER_MS, 30_000),
    maxEmbeddingInputs: checkInt('gateway admission maxEmbeddingInputs', options.maxEmbeddingInputs, 1, 2048, 2048),
    embeddingParallelism: checkInt('gateway admission embeddingParallelism', options.embeddingParallelism, 1, 1024, 8),
    apiKeyTenants: new Map(Object.entries(keys)),
  };
}

/**
 * Checks each entry of `apiKeyTenants`, naming a bad one by its place and its key by length
 * only: the keys are secrets, and the message goes to logs and terminals.
 */
function checkKeyTenants(keys: Readonly<Record<string, unknown>>): void {
  let place = 0;
  for (const [key, tenant] of Object.entries(keys)) {
    place++;
    const which = `gateway admission apiKeyTenants: entry ${place} (a key of ${key.length} characters)`;
    if (key.trim() === '') throw new TypeError(`${which}: the API key is empty or blank; give the key a client sends as its bearer token`);
    if (typeof tenant !== 'string' || tenant.trim() === '') {
      const got = typeof tenant === 'string' ? JSON.stringify(tenant) : tenant === null ? 'null' : Array.isArray(tenant) ? 'an array' : typeof tenant;
      throw new TypeError(`${which}: its tenant must be a non-empty string, the tenant's name (as in tenants), got ${got}`);
    }
  }
}
