import type { ChatMessage } from '../inference/inference.js';
import { BadRequest } from './openai-errors.js';

/*
 * The `messages` of a chat completion, checked as OpenAI checks them: the role is one of
 * OpenAI's, each role has the fields OpenAI allows for it and no others, and the fields have
 * their types. The refusals use OpenAI's words and codes (invalid_value, invalid_type,
 * missing_required_parameter), with the field as `param`, so a client's error handling sees
 * what it would see from OpenAI.
 */

/** The fields each role may carry, as OpenAI's API reference lists them. */
const FIELDS: Readonly<Record<string, readonly string[]>> = {
  developer: ['role', 'content', 'name'],
  system: ['role', 'content', 'name'],
  user: ['role', 'content', 'name'],
  assistant: ['role', 'content', 'name', 'refusal', 'tool_calls', 'function_call', 'audio'],
  tool: ['role', 'content', 'tool_call_id'],
  function: ['role', 'content', 'name'],
};
const ROLES = Object.keys(FIELDS);

/** Checks and converts `messages` (already known to be a non-empty array). */
export function parseMessages(messages: readonly unknown[]): ChatMessage[] {
  return messages.map((message, index) => parseMessage(message, `messages[${index}]`));
}

function parseMessage(message: unknown, at: string): ChatMessage {
  if (message === null || typeof message !== 'object' || Array.isArray(message)) {
    throw new BadRequest(`Invalid type for '${at}': expected an object, but got ${typeName(message)} instead.`, at, 400, 'invalid_type');
  }
  const entry = message as Record<string, unknown>;
  const role = entry['role'];
  if (role === undefined) throw new BadRequest(`Missing required parameter: '${at}.role'.`, `${at}.role`, 400, 'missing_required_parameter');
  if (typeof role !== 'string' || !Object.hasOwn(FIELDS, role)) {
    const supported = `${ROLES.slice(0, -1)
      .map((name) => `'${name}'`)
      .join(', ')}, and '${ROLES.at(-1)}'`;
    throw new BadRequest(
      `Invalid value: ${typeof role === 'string' ? `'${role.slice(0, 60)}'` : JSON.stringify(role)?.slice(0, 60)}. Supported values are: ${supported}.`,
      `${at}.role`,
      400,
      'invalid_value',
    );
  }
  const allowed = FIELDS[role]!;
  const extra = Object.keys(entry).find((key) => !allowed.includes(key));
  if (extra !== undefined) {
    throw new BadRequest(
      `Additional properties are not allowed ('${extra.slice(0, 60)}' was unexpected) in ${at}, a ${role} message`,
      `${at}.${extra.slice(0, 60)}`,
      400,
      'invalid_value',
    );
  }
  for (const unsupported of ['tool_calls', 'function_call', 'audio']) {
    if (entry[unsupported] != null)
      throw new BadRequest(`${at}.${unsupported} is not supported by this gateway (tools and audio are not)`, `${at}.${unsupported}`);
  }
  // Content may be left out only by an assistant message (one that called a tool or refused).
  if (entry['content'] == null && role !== 'assistant') {
    throw new BadRequest(`Missing required parameter: '${at}.content'.`, `${at}.content`, 400, 'missing_required_parameter');
  }
  if (role === 'tool' && typeof entry['tool_call_id'] !== 'string') {
    throw new BadRequest(`Missing required parameter: '${at}.tool_call_id'.`, `${at}.tool_call_id`, 400, 'missing_required_parameter');
  }
  if (role === 'function' && typeof entry['name'] !== 'string') {
    throw new BadRequest(`Missing required parameter: '${at}.name'.`, `${at}.name`, 400, 'missing_required_parameter');
  }
  for (const key of ['name', 'refusal', 'tool_call_id']) {
    const value = entry[key];
    if (value != null && typeof value !== 'string') {
      throw new BadRequest(`Invalid type for '${at}.${key}': expected a string, but got ${typeName(value)} instead.`, `${at}.${key}`, 400, 'invalid_type');
    }
  }
  return { role, content: contentText(entry['content'], `${at}.content`), ...(typeof entry['name'] === 'string' ? { name: entry['name'] } : {}) };
}

/** A message's content: a string, or the text parts of an array of parts joined. */
function contentText(content: unknown, param: string): string {
  if (typeof content === 'string') return content;
  if (content === null || content === undefined) return '';
  if (Array.isArray(content)) {
    return content
      .map((part: { type?: unknown; text?: unknown }, index) => {
        if (part?.type !== 'text' || typeof part.text !== 'string')
          throw new BadRequest(`${param}[${index}] must be a text part ({ type: "text", text }); other parts are not supported`, `${param}[${index}]`);
        return part.text;
      })
      .join('');
  }
  throw new BadRequest(
    `Invalid type for '${param}': expected one of a string or array of objects, but got ${typeName(content)} instead.`,
    param,
    400,
    'invalid_type',
  );
}

/** OpenAI's words for a JSON value's type. */
function typeName(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'number') return Number.isInteger(value) ? 'an integer' : 'a decimal';
  if (typeof value === 'boolean') return 'a boolean';
  if (typeof value === 'string') return 'a string';
  return 'an object';
}
