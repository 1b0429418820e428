import { checkInt, checkKnownKeys, checkName, invalidOption, optionKeys } from '../common/validate.js';
import type { AdmissionOptions, AdmissionRequest, TenantLimits } from './admission.js';
import type { ResolvedLimits } from './tenant.js';

/** Priorities run from 0 (lowest) to this. */
export const MAX_PRIORITY = 9;
/** The priority of a call that names none. */
export const DEFAULT_PRIORITY = 1;
/** The priority the gateway's `x-priority: high` stands for. */
export const HIGH_PRIORITY = 5;

const TENANT_KEYS = optionKeys<TenantLimits>()(['weight', 'maxConcurrent', 'tokensPerMinute', 'maxQueued', 'maxPriority']);
const ADMISSION_KEYS = optionKeys<AdmissionOptions>()([
  'capacity',
  'maxQueued',
  'maxQueuedTokens',
  'tenants',
  'tenantDefaults',
  'defaultRetryAfterMs',
  'reserve',
  'overcommit',
  'clock',
  'observer',
]);
const PRIORITY_SLOTS_KEYS = optionKeys<NonNullable<AdmissionOptions['reserve']>>()(['priority', 'slots']);

/** Slots set aside for, or added for, calls of at least `priority`. */
export interface PrioritySlots {
  readonly priority: number;
  readonly slots: number;
}

/** The queue-wide options, checked, with defaults. */
export interface ResolvedAdmissionOptions {
  readonly maxQueued: number;
  readonly maxQueuedTokens: number;
  readonly defaultRetryAfterMs: number;
  readonly reserve: PrioritySlots | undefined;
  readonly overcommit: PrioritySlots | undefined;
  /** The limits of `tenant`, resolved (cached per named tenant). */
  limitsOf(tenant: string): ResolvedLimits;
}

/** Checks `options` (every bad key named with what is allowed) and fills in defaults. */
export function resolveOptions(options: AdmissionOptions): ResolvedAdmissionOptions {
  if (options === null || typeof options !== 'object') throw invalidOption('admission options', options, 'an object');
  checkKnownKeys('admission', options, ADMISSION_KEYS);
  if (typeof options.capacity !== 'function')
    throw invalidOption('admission capacity', options.capacity, 'a function returning the calls the fleet can run at once');
  const maxQueued = checkInt('admission maxQueued', options.maxQueued, 0, 1_000_000, 1024);
  const maxQueuedTokens = checkInt('admission maxQueuedTokens', options.maxQueuedTokens, 0, 2 ** 40, 4_000_000);
  const defaultRetryAfterMs = checkInt('admission defaultRetryAfterMs', options.defaultRetryAfterMs, 1, 3_600_000, 1000);
  const defaults = resolveLimits('admission tenantDefaults', options.tenantDefaults ?? {}, maxQueued);
  const named = new Map<string, ResolvedLimits>();
  const tenants = options.tenants ?? {};
  if (tenants === null || typeof tenants !== 'object') throw invalidOption('admission tenants', tenants, 'an object of tenant name to limits');
  for (const [name, limits] of Object.entries(tenants))
    named.set(name, resolveLimits(`admission tenants.${name}`, { ...options.tenantDefaults, ...limits }, maxQueued));
  return {
    maxQueued,
    maxQueuedTokens,
    defaultRetryAfterMs,
    reserve: resolvePrioritySlots('reserve', options.reserve),
    overcommit: resolvePrioritySlots('overcommit', options.overcommit),
    limitsOf: (tenant) => named.get(tenant) ?? defaults,
  };
}

function resolvePrioritySlots(key: 'reserve' | 'overcommit', value: AdmissionOptions['reserve']): PrioritySlots | undefined {
  if (value === undefined) return undefined;
  if (value === null || typeof value !== 'object') throw invalidOption(`admission ${key}`, value, 'an object { priority, slots }');
  checkKnownKeys(`admission ${key}`, value, PRIORITY_SLOTS_KEYS);
  return {
    priority: checkInt(`admission ${key}.priority`, value.priority, 1, MAX_PRIORITY, MAX_PRIORITY),
    slots: checkInt(`admission ${key}.slots`, value.slots, 1, 1_000_000, 1),
  };
}

function resolveLimits(where: string, limits: TenantLimits, maxQueued: number): ResolvedLimits {
  if (limits === null || typeof limits !== 'object')
    throw invalidOption(where, limits, 'an object with weight, maxConcurrent, tokensPerMinute, maxQueued, maxPriority');
  checkKnownKeys(where, limits, TENANT_KEYS);
  const weight = limits.weight ?? 1;
  if (typeof weight !== 'number' || !(weight > 0) || weight > 1_000_000) throw invalidOption(`${where}.weight`, weight, 'a number above 0, at most 1000000');
  return {
    weight,
    maxConcurrent: checkInt(`${where}.maxConcurrent`, limits.maxConcurrent, 1, 1_000_000) ?? Infinity,
    tokensPerMinute: checkInt(`${where}.tokensPerMinute`, limits.tokensPerMinute, 1, 2 ** 40) ?? Infinity,
    maxQueued: checkInt(`${where}.maxQueued`, limits.maxQueued, 0, 1_000_000) ?? Math.max(1, Math.floor(maxQueued / 2)),
    maxPriority: checkInt(`${where}.maxPriority`, limits.maxPriority, 0, MAX_PRIORITY, MAX_PRIORITY),
  };
}

/** Checks one admission request; a bad field is a programming error of the caller (TypeError). */
export function checkRequest(request: AdmissionRequest): number {
  if (request === null || typeof request !== 'object') throw invalidOption('admission request', request, 'an object');
  checkName('admission request tenant', request.tenant);
  const priority = checkInt('admission request priority', request.priority, 0, MAX_PRIORITY, DEFAULT_PRIORITY);
  if (typeof request.tokens !== 'number' || !Number.isFinite(request.tokens) || request.tokens < 0)
    throw invalidOption('admission request tokens', request.tokens, 'a finite number ≥ 0');
  if (typeof request.deadline !== 'number' || Number.isNaN(request.deadline))
    throw invalidOption('admission request deadline', request.deadline, "a time on the queue's clock, ms");
  return priority;
}
