import { BadRequest, jsonTypeName } from './openai-errors.js';

/** The endpoint a request body is for; each has its own fields. */
export type Endpoint = 'chat' | 'completion' | 'embeddings';

/*
 * Every top-level field of a request body is one of three kinds, and a field of none of them is
 * refused. The rule (docs/OPENAI.md): a field that changes the answer and that the workers cannot
 * honour is refused with 400 naming it, never dropped, because dropping it answers a different
 * question than the one asked; a field that does not change the answer is ignored.
 *
 * - read: the parser (requests.ts) reads and checks it.
 * - ignored: it changes who pays, what is stored or how fast, never the text of the answer.
 * - refused: it changes the answer and the worker contract (GenerateRequest, embed) does not
 *   carry it; accepted only with the value that means "off".
 */

const GENERATION_READ = [
  'model',
  'max_tokens',
  'temperature',
  'top_p',
  'seed',
  'presence_penalty',
  'frequency_penalty',
  'stop',
  'n',
  'stream',
  'stream_options',
];

const READ: Record<Endpoint, ReadonlySet<string>> = {
  chat: new Set([...GENERATION_READ, 'messages', 'max_completion_tokens']),
  completion: new Set([...GENERATION_READ, 'prompt']),
  embeddings: new Set(['model', 'input', 'encoding_format']),
};

/** The JSON type an ignored field must have, as OpenAI checks it (null is always accepted). */
type JsonType = 'a string' | 'a boolean' | 'an object';

/**
 * Ignored: `user`, `safety_identifier` (abuse tracking), `metadata`, `store` (storing the
 * answer at OpenAI), `service_tier` (price and latency), `prompt_cache_key` (OpenAI's cache
 * routing), `parallel_tool_calls` (meaningless without `tools`, which are refused), `prediction`
 * (predicted output only makes a generation faster; the answer is the same). Their values are
 * not used, but their types are checked as OpenAI checks them: a client that sends `user: 5`
 * is told here, not when it moves to OpenAI.
 */
const COMMON_IGNORED: Record<string, JsonType> = {
  user: 'a string',
  safety_identifier: 'a string',
  metadata: 'an object',
  store: 'a boolean',
  service_tier: 'a string',
  prompt_cache_key: 'a string',
};
const IGNORED: Record<Endpoint, Readonly<Record<string, JsonType>>> = {
  chat: { ...COMMON_IGNORED, parallel_tool_calls: 'a boolean', prediction: 'an object' },
  completion: COMMON_IGNORED,
  embeddings: { user: 'a string' },
};

const absent = (value: unknown): boolean => value === undefined || value === null;
const off = (value: unknown): boolean => absent(value) || value === false;

/** A refused field: whether `value` is its "off" value, which is accepted, and that value when it is not just null. */
interface Refused {
  readonly isOff: (value: unknown) => boolean;
  readonly offValue?: string;
}

const ANY: Refused = { isOff: absent };

/** Refused on chat and text completions. */
const GENERATION_REFUSED: Record<string, Refused> = {
  logit_bias: { isOff: (value) => absent(value) || (isPlainObject(value) && Object.keys(value).length === 0), offValue: '{}' },
};

const REFUSED: Record<Endpoint, Record<string, Refused>> = {
  chat: {
    ...GENERATION_REFUSED,
    tools: ANY,
    tool_choice: ANY,
    functions: ANY,
    function_call: ANY,
    response_format: {
      isOff: (value) => absent(value) || (isPlainObject(value) && value['type'] === 'text' && Object.keys(value).length === 1),
      offValue: '{"type": "text"}',
    },
    logprobs: { isOff: off, offValue: 'false' },
    top_logprobs: ANY,
    audio: ANY,
    modalities: { isOff: (value) => absent(value) || (Array.isArray(value) && value.length === 1 && value[0] === 'text'), offValue: '["text"]' },
    web_search_options: ANY,
    reasoning_effort: ANY,
    verbosity: ANY,
  },
  completion: {
    ...GENERATION_REFUSED,
    logprobs: ANY,
    echo: { isOff: off, offValue: 'false' },
    best_of: { isOff: (value) => absent(value) || value === 1, offValue: '1' },
    suffix: { isOff: (value) => absent(value) || value === '', offValue: '""' },
  },
  embeddings: { dimensions: ANY },
};

/**
 * Checks the top-level fields of a body for `endpoint`: a refused field holding anything but its
 * "off" value is a 400 `unsupported_parameter` naming it, and a field the gateway does not know
 * a 400 `unknown_parameter` (as OpenAI answers one), since either would otherwise be dropped
 * without a word.
 */
export function checkFields(endpoint: Endpoint, fields: Record<string, unknown>): void {
  for (const [name, value] of Object.entries(fields)) {
    if (READ[endpoint].has(name)) continue;
    const ignored = Object.hasOwn(IGNORED[endpoint], name) ? IGNORED[endpoint][name] : undefined;
    if (ignored !== undefined) {
      if (value !== null && jsonType(value) !== ignored) {
        throw new BadRequest(`Invalid type for '${name}': expected ${ignored}, but got ${jsonTypeName(value)} instead.`, name, 400, 'invalid_type');
      }
      continue;
    }
    const refused = Object.hasOwn(REFUSED[endpoint], name) ? REFUSED[endpoint][name] : undefined;
    if (refused === undefined) {
      const shown = name.length > 64 ? `${name.slice(0, 64)}…` : name;
      throw new BadRequest(
        `${shown} is not a parameter this gateway knows; leave it out (it refuses what it would otherwise ignore)`,
        shown,
        400,
        'unknown_parameter',
      );
    }
    if (!refused.isOff(value)) {
      throw new BadRequest(
        `${name} is not supported by this gateway (it would change the answer; leave it out${refused.offValue === undefined ? '' : ` or send ${refused.offValue}`})`,
        name,
        400,
        'unsupported_parameter',
      );
    }
  }
}

function jsonType(value: unknown): JsonType | undefined {
  if (typeof value === 'string') return 'a string';
  if (typeof value === 'boolean') return 'a boolean';
  return isPlainObject(value) ? 'an object' : undefined;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}
