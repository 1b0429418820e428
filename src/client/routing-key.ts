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

/** The request itself when it is a string, else its `prompt` field when that is a string. */
function defaultRoutingKey(request: unknown): string | undefined {
  if (typeof request === 'string') return request;
  if (request !== null && typeof request === 'object') {
    const prompt = (request as { prompt?: unknown }).prompt;
    if (typeof prompt === 'string') return prompt;
  }
  return undefined;
}

/** A string as is; chat messages (strings, or objects with a string `content`) joined by newlines. */
function textOf(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (!Array.isArray(value)) return undefined;
  const parts: string[] = [];
  for (const item of value) {
    if (typeof item === 'string') parts.push(item);
    else if (item !== null && typeof item === 'object' && typeof (item as { content?: unknown }).content === 'string')
      parts.push((item as { content: string }).content);
    else return undefined;
  }
  return parts.join('\n');
}
