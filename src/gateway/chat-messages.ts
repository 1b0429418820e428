import type { ChatMessage } from '../inference/inference.js';
import { BadRequest, jsonTypeName } from './openai-errors.js';

/*
 * The `messages` of a chat completion, checked as OpenAI checks them: the role is one of
 * OpenAI's, each role has the fields OpenAI allows for it and no others, and the fields have
 * their types. The refusals use OpenAI's words and codes (invalid_value, invalid_type,
 * missing_required_parameter), with the field as `param`, so a client's error handling sees
 * what it would see from OpenAI. What OpenAI takes but the worker contract (role, content as
 * text, name) cannot carry — tool calls and the tool messages answering them, refusals, audio,
 * content parts other than text — is refused with `unsupported_parameter`, never dropped.
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
    throw new BadRequest(`Invalid type for '${at}': expected an object, but got ${jsonTypeName(message)} instead.`, at, 400, 'invalid_type');
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
  // The worker contract carries a message's role, content and name: anything else it says would
  // be dropped on the way to the engine, and the model would read a different conversation.
  for (const unsupported of ['tool_calls', 'function_call', 'audio', 'refusal']) {
    if (entry[unsupported] != null)
      throw new BadRequest(
        `${at}.${unsupported} is not supported by this gateway (tool calls, audio and refusals are not; leave it out or send null)`,
        `${at}.${unsupported}`,
        400,
        'unsupported_parameter',
      );
  }
  // A tool (or function) message answers an assistant's tool call, which this gateway never
  // makes or takes: OpenAI refuses one that follows no tool call, and its tool_call_id has no
  // place in the worker contract.
  if (role === 'tool' || role === 'function') {
    throw new BadRequest(
      `${at} is a ${role} message, the answer to a tool call; this gateway does not support tool calls, so it takes none (roles taken: developer, system, user, assistant)`,
      `${at}.role`,
      400,
      'unsupported_parameter',
    );
  }
  // Content may be left out only by an assistant message (one that called a tool or refused).
  if (entry['content'] == null && role !== 'assistant') {
    throw new BadRequest(`Missing required parameter: '${at}.content'.`, `${at}.content`, 400, 'missing_required_parameter');
  }
  const name = entry['name'];
  if (name != null && typeof name !== 'string') {
    throw new BadRequest(`Invalid type for '${at}.name': expected a string, but got ${jsonTypeName(name)} instead.`, `${at}.name`, 400, 'invalid_type');
  }
  return { role, content: contentText(entry['content'], `${at}.content`), ...(typeof entry['name'] === 'string' ? { name: entry['name'] } : {}) };
}

/** A message's content: a string, or the text parts of an array of parts joined. */
function contentText(content: unknown, param: string): string {
  if (typeof content === 'string') return content;
  if (content === null || content === undefined) return '';
  if (Array.isArray(content)) {
    if (content.length === 0) {
      throw new BadRequest(
        `Invalid '${param}': empty array. Expected an array with minimum length 1, but got an empty array instead.`,
        param,
        400,
        'empty_array',
      );
    }
    return content
      .map((part: { type?: unknown; text?: unknown }, index) => {
        if (part?.type === 'text' && typeof part.text === 'string') return part.text;
        const type = typeof part?.type === 'string' ? ` (this one is ${JSON.stringify(part.type.slice(0, 60))})` : '';
        throw new BadRequest(
          `${param}[${index}] must be a text part ({ type: "text", text })${type}; this gateway's workers take text only`,
          `${param}[${index}]`,
          400,
          part?.type === 'text' || typeof part?.type !== 'string' ? 'invalid_value' : 'unsupported_parameter',
        );
      })
      .join('');
  }
  throw new BadRequest(
    `Invalid type for '${param}': expected one of a string or array of objects, but got ${jsonTypeName(content)} instead.`,
    param,
    400,
    'invalid_type',
  );
}
