import { timingSafeEqual, createHash } from 'node:crypto';
import { createContextKey } from '../call/context-values.js';
import { checkKnownKeys, invalidOption } from '../common/validate.js';
import { RpcCode, RpcError } from '../errors/errors.js';
import type { ExtensionFactory } from '../common/extension-registry.js';
import type { Filter } from './filter.js';

/** Metadata key carrying a consumer's token. */
export const TOKEN_META = 'shuttle-token';
/** The name this filter is registered under. */
export const TYPE_NAME = 'token';

/**
 * Token authentication (Dubbo's TokenFilter). Options: `{ token?: string }`. On the consumer it
 * attaches the token to every call; on the provider it refuses, with UNAUTHENTICATED, a call
 * whose token differs. Without a token it does nothing, which is why it can be on by default.
 * The comparison hashes both sides first so it takes the same time whatever the lengths, and
 * the token is never echoed in an error.
 */
export const createTokenFilter: ExtensionFactory<Filter> = (options) => {
  checkKnownKeys('token filter options', options, ['token']);
  const token = options['token'];
  if (token !== undefined && (typeof token !== 'string' || token.length === 0)) {
    throw invalidOption('token filter option token', '(hidden)', 'a non-empty string');
  }
  const expected = token === undefined ? undefined : digest(token);
  return {
    name: TYPE_NAME,
    order: -1000,
    sides: ['consumer', 'provider'],
    active: token !== undefined,
    invoke(invocation, next) {
      if (token === undefined) return next(invocation);
      if (invocation.side === 'consumer') {
        return next({ ...invocation, metadata: { ...invocation.metadata, [TOKEN_META]: token } });
      }
      // A provider checked the token in admit(), before decoding; a chain composed without
      // a dispatcher (a plugin's own use of filters) still gets the check here.
      if (invocation.values.get(ADMITTED)) return next(invocation);
      const refused = check(invocation.service, invocation.method, invocation.metadata);
      return refused === undefined ? next(invocation) : Promise.reject(refused);
    },
    admit(call) {
      return token === undefined ? undefined : check(call.service, call.method, call.metadata);
    },
  };

  function check(service: string, method: string, metadata: Readonly<Record<string, string>>): RpcError | undefined {
    const offered = metadata[TOKEN_META];
    if (offered !== undefined && timingSafeEqual(digest(offered), expected!)) return undefined;
    return new RpcError(RpcCode.UNAUTHENTICATED, `${service}.${method} needs a valid token (${offered === undefined ? 'none sent' : 'token rejected'})`);
  }
};

/** Set on a provider call whose filters' admit() already ran (by the dispatcher). */
export const ADMITTED = createContextKey(false, 'shuttle-rpc admitted');

function digest(value: string): Buffer {
  return createHash('sha256').update(value).digest();
}
