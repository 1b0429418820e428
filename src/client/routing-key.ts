import { invalidOption } from '../common/validate.js';

/** Turns the reference's `routingKey` option into a function from request to key. */
export function routingKeyExtractor(option: unknown, key: string): (request: unknown) => string | undefined {
  if (option === undefined) return defaultRoutingKey;
  if (typeof option === 'function') {
    return (request) => {
      const value = (option as (request: unknown) => unknown)(request);
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
 * its chat `messages` as {@link textOf} reads them.
 */
function defaultRoutingKey(request: unknown): string | undefined {
  if (typeof request === 'string') return request;
  if (request !== null && typeof request === 'object') {
    const { prompt, messages } = request as { prompt?: unknown; messages?: unknown };
    if (typeof prompt === 'string') return prompt;
    if (Array.isArray(messages)) return textOf(messages);
  }
  return undefined;
}

/**
 * A string as is; chat messages (strings, or objects with a string `content`) one per line, an
 * object with a `role` as `role: content` — the text the gateway routes on and an engine worker
 * describes its cache in (`promptText`), so consumers, gateways and workers name a prefix alike.
 */
function textOf(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (!Array.isArray(value)) return undefined;
  const parts: string[] = [];
  for (const item of value) {
    if (typeof item === 'string') parts.push(item);
    else if (item !== null && typeof item === 'object' && typeof (item as { content?: unknown }).content === 'string') {
      const { role, content } = item as { role?: unknown; content: string };
      parts.push(role === undefined ? content : `${String(role)}: ${content}`);
    } else return undefined;
  }
  return parts.join('\n');
}
