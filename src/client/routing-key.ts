import { invalidOption } from '../common/validate.js';
import { RpcCode, RpcError, thrownMessage } from '../errors/errors.js';
import { messagesText } from '../inference/inference.js';

/** Turns the reference's `routingKey` option into a function from request to key. */
export function routingKeyExtractor(option: unknown, key: string): (request: unknown) => string | undefined {
  if (option === undefined) return defaultRoutingKey;
  if (typeof option === 'function') {
    return (request) => {
      // Application code, called for every call: what it throws fails that call, named.
      let value: unknown;
      try {
        value = (option as (request: unknown) => unknown)(request);
      } catch (error) {
        throw new RpcError(RpcCode.INTERNAL, `${key} threw: ${thrownMessage(error)}`, { details: { neverSent: true, local: true } });
      }
      return typeof value === 'string' ? value : undefined;
    };
  }
  if (typeof option === 'string' && /^[A-Za-z_$][\w$]*(\.[\w$]+)*$/.test(option)) {
    const path = option.split('.');
    return (request) =>
      textOf(
        path.reduce<unknown>((value, part) => (value !== null && typeof value === 'object' ? (value as Record<string, unknown>)[part] : undefined), request),
      );
  }
  throw invalidOption(key, option, "a dotted path into the request such as 'prompt' or 'input.messages', or a function (request) => string");
}

/**
 * The request itself when it is a string, else its `prompt` field when that is a string, else
 * its chat `messages` as the gateway and engine workers read them (`messagesText`).
 */
function defaultRoutingKey(request: unknown): string | undefined {
  if (typeof request === 'string') return request;
  if (request !== null && typeof request === 'object') {
    const { prompt, messages } = request as { prompt?: unknown; messages?: unknown };
    if (typeof prompt === 'string') return prompt;
    if (Array.isArray(messages)) return messagesText(messages);
  }
  return undefined;
}

/**
 * What a `routingKey` path leads to, as text: a string as is; an array of strings joined by
 * newlines; an array of chat messages as `messagesText` reads them (the default's text).
 */
function textOf(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (!Array.isArray(value)) return undefined;
  if (value.every((item) => typeof item === 'string')) return value.join('\n');
  return value.every((item) => item !== null && typeof item === 'object') ? messagesText(value) : undefined;
}
