import type { FastifyRequest } from 'fastify';
import { DEFAULT_PRIORITY, HIGH_PRIORITY } from '../admission/options.js';
import { BadRequest } from './openai-errors.js';

/** Who a request is from, for admission: the tenant it is charged to and its priority. */
export interface Caller {
  readonly tenant: string;
  readonly priority: number;
}

/** A Map, not an object literal: a header naming an Object.prototype member (`constructor`, `__proto__`) is no priority. */
const PRIORITY_NAMES: ReadonlyMap<string, number> = new Map([
  ['low', 0],
  ['normal', DEFAULT_PRIORITY],
  ['high', HIGH_PRIORITY],
]);
const TENANT = /^[\w.:@-]{1,64}$/;

/**
 * The caller of `request`: the tenant of its bearer token in `apiKeyTenants` (which a header
 * cannot override), else the `x-tenant-id` header, else its remote address; the priority from
 * `x-priority` (`low` 0, `normal` 1, `high` 5, or an integer 0–9; `normal` when absent).
 * A malformed header is a 400 naming the header and what it allows.
 */
export function callerOf(request: FastifyRequest, apiKeyTenants: ReadonlyMap<string, string>): Caller {
  const token = /^Bearer (.+)$/i.exec(request.headers.authorization ?? '')?.[1];
  const header = single(request.headers['x-tenant-id'], 'x-tenant-id');
  if (header !== undefined && !TENANT.test(header)) {
    throw new BadRequest('the x-tenant-id header must be 1 to 64 letters, digits or . _ : @ -', null);
  }
  // `ip:…` names the tenant of a client that names none: a header claiming one would spend (and
  // fill the queue share of) the tenant of another client's address.
  if (header?.startsWith('ip:')) {
    throw new BadRequest(`the x-tenant-id header may not start with ip: (the gateway's names for callers that give none), got ${JSON.stringify(header)}`, null);
  }
  const keyed = token === undefined ? undefined : apiKeyTenants.get(token);
  // A tenant an API key maps to is reached with that key only: a header naming it would let
  // anyone without the key spend that tenant's share and fill its queue.
  if (keyed === undefined && header !== undefined && isKeyTenant(apiKeyTenants, header)) {
    throw new BadRequest(
      `tenant ${JSON.stringify(header)} is reached with its API key (Authorization: Bearer …), not with the x-tenant-id header`,
      null,
      401,
      'invalid_api_key',
    );
  }
  const tenant = keyed ?? header ?? `ip:${request.ip}`;
  return { tenant, priority: priorityOf(single(request.headers['x-priority'], 'x-priority')) };
}

/** Tenants named by API keys, per key map (built once per map). */
const keyTenants = new WeakMap<ReadonlyMap<string, string>, ReadonlySet<string>>();

function isKeyTenant(apiKeyTenants: ReadonlyMap<string, string>, tenant: string): boolean {
  if (apiKeyTenants.size === 0) return false;
  let tenants = keyTenants.get(apiKeyTenants);
  if (tenants === undefined) {
    tenants = new Set(apiKeyTenants.values());
    keyTenants.set(apiKeyTenants, tenants);
  }
  return tenants.has(tenant);
}

function priorityOf(value: string | undefined): number {
  if (value === undefined) return DEFAULT_PRIORITY;
  const named = PRIORITY_NAMES.get(value.toLowerCase());
  if (named !== undefined) return named;
  if (/^\d$/.test(value)) return Number(value);
  throw new BadRequest(`the x-priority header must be low, normal, high or an integer from 0 to 9, got ${JSON.stringify(value.slice(0, 32))}`, null);
}

function single(value: string | string[] | undefined, name: string): string | undefined {
  if (Array.isArray(value)) throw new BadRequest(`the ${name} header was sent more than once`, null);
  return value;
}
