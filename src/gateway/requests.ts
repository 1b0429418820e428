import { isTokenIds, MAX_TOKEN_ID, type GenerateRequest } from '../inference/inference.js';
import { parseMessages } from './chat-messages.js';
import { BadRequest } from './openai-errors.js';
import { checkFields } from './request-fields.js';

/** A generation as the gateway runs it: the worker request plus the HTTP-side choices. */
export interface ParsedGeneration {
  readonly request: GenerateRequest & { model: string };
  readonly stream: boolean;
  /** `stream_options.include_usage`: send a last chunk with the usage. */
  readonly includeUsage: boolean;
}

/** The embedding inputs of a /v1/embeddings body: texts, or token-id arrays. */
export interface ParsedEmbeddings {
  readonly model: string;
  readonly inputs: Array<string | number[]>;
  readonly base64: boolean;
}

/** The longest stop sequence accepted, characters. */
const MAX_STOP_CHARS = 1024;

/** Checks a /v1/chat/completions body; a {@link BadRequest} names the field otherwise. */
export function parseChat(body: unknown): ParsedGeneration {
  const fields = object(body);
  checkFields('chat', fields);
  const messages = fields.messages;
  if (!Array.isArray(messages) || messages.length === 0) {
    throw new BadRequest(
      `messages must be a non-empty array, got ${describe(messages)}`,
      'messages',
      400,
      Array.isArray(messages) ? 'empty_array' : 'invalid_type',
    );
  }
  const parsed = parseMessages(messages);
  // Both are checked, each under its own name; max_completion_tokens, which replaces max_tokens
  // in OpenAI's chat API, wins when both are given (as vLLM reads them).
  const maxTokens = maxTokensOf(fields, 'max_tokens');
  return generation(fields, { messages: parsed }, maxTokensOf(fields, 'max_completion_tokens') ?? maxTokens);
}

/** Checks a /v1/completions body. */
export function parseCompletion(body: unknown): ParsedGeneration {
  const fields = object(body);
  checkFields('completion', fields);
  let prompt = fields.prompt;
  if (Array.isArray(prompt) && prompt.length === 1 && typeof prompt[0] === 'string') prompt = prompt[0];
  if (typeof prompt !== 'string') {
    throw new BadRequest(`prompt must be a string (or an array of one string; batches and token arrays are not supported), got ${describe(prompt)}`, 'prompt');
  }
  return generation(fields, { prompt }, maxTokensOf(fields, 'max_tokens'));
}

/** The most tokens to generate, from the field `name`: a whole number from 1, or nothing when the field is absent or null. */
function maxTokensOf(fields: Record<string, unknown>, name: string): number | undefined {
  const value = fields[name];
  return value === undefined || value === null ? undefined : integer(value, name, 1, 1_000_000);
}

/** Checks a /v1/embeddings body. */
export function parseEmbeddings(body: unknown): ParsedEmbeddings {
  const fields = object(body);
  checkFields('embeddings', fields);
  const model = modelOf(fields);
  const input = fields.input;
  const inputs = embeddingInputs(input);
  if (inputs.length > 2048) throw new BadRequest(`input has ${inputs.length} entries; at most 2048 are allowed`, 'input');
  // OpenAI refuses an empty text ("cannot be an empty string"): it has no tokens to embed, and
  // an engine would answer it with an error or a vector that means nothing.
  const empty = inputs.indexOf('');
  if (empty >= 0) {
    const param = typeof input === 'string' ? 'input' : `input[${empty}]`;
    throw new BadRequest(`${param} is an empty string; each input must hold some text`, param, 400, 'invalid_value');
  }
  const format = fields.encoding_format ?? 'float';
  if (format !== 'float' && format !== 'base64')
    throw new BadRequest(`encoding_format must be "float" or "base64", got ${describe(format)}`, 'encoding_format');
  return { model, inputs, base64: format === 'base64' };
}

/**
 * The inputs of an embeddings body as OpenAI takes them: a string, an array of strings, an
 * array of token ids (one input), or an array of such arrays — never strings and token arrays
 * mixed. A token id is a whole number from 0 to 2^31 - 1.
 */
function embeddingInputs(input: unknown): Array<string | number[]> {
  const allowed = 'a string, an array of strings, an array of token ids (whole numbers from 0), or an array of such arrays';
  if (typeof input === 'string') return [input];
  if (!Array.isArray(input) || input.length === 0) throw new BadRequest(`input must be ${allowed}, got ${describe(input)}`, 'input');
  if (typeof input[0] === 'number') {
    if (!isTokenIds(input))
      throw new BadRequest(`input is an array of token ids; each must be a whole number from 0 to ${MAX_TOKEN_ID}, got ${describe(input)}`, 'input');
    return [input];
  }
  const strings = typeof input[0] === 'string';
  if (!strings && !Array.isArray(input[0])) throw new BadRequest(`input[0] must be a string or an array of token ids, got ${describe(input[0])}`, 'input[0]');
  for (const [index, entry] of input.entries()) {
    const fits = strings ? typeof entry === 'string' : isTokenIds(entry);
    if (!fits) {
      const what = strings ? 'a string, as input[0] is' : `a non-empty array of token ids (whole numbers from 0 to ${MAX_TOKEN_ID}), as input[0] is`;
      throw new BadRequest(`input[${index}] must be ${what}; got ${describe(entry)}`, `input[${index}]`);
    }
  }
  return input as Array<string | number[]>;
}

function generation(fields: Record<string, unknown>, prompt: Pick<GenerateRequest, 'prompt' | 'messages'>, maxTokens: number | undefined): ParsedGeneration {
  const request: GenerateRequest & { model: string } = { model: modelOf(fields), ...prompt };
  if (maxTokens !== undefined) request.maxTokens = maxTokens;
  if (fields.temperature != null) request.temperature = number(fields.temperature, 'temperature', 0, 2);
  if (fields.top_p != null) request.topP = number(fields.top_p, 'top_p', 0, 1);
  if (fields.seed != null) request.seed = integer(fields.seed, 'seed', Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER);
  if (fields.presence_penalty != null) request.presencePenalty = number(fields.presence_penalty, 'presence_penalty', -2, 2);
  if (fields.frequency_penalty != null) request.frequencyPenalty = number(fields.frequency_penalty, 'frequency_penalty', -2, 2);
  if (fields.stop != null) {
    const stop = fields.stop;
    // Each sequence at most 1,024 characters: a stop sequence is a few tokens, and what the
    // gateway holds while a request queues is priced by its prompt, not by its stop sequences.
    const short = (entry: unknown): boolean => typeof entry === 'string' && entry.length <= MAX_STOP_CHARS;
    const ok = short(stop) || (Array.isArray(stop) && stop.length <= 4 && stop.every(short));
    if (!ok)
      throw new BadRequest(`stop must be a string or an array of at most 4 strings of at most ${MAX_STOP_CHARS} characters, got ${describe(stop)}`, 'stop');
    request.stop = stop as string | string[];
  }
  if (fields.n != null && fields.n !== 1)
    throw new BadRequest(`n must be 1 (one choice per request), got ${describe(fields.n)}`, 'n', 400, 'unsupported_value');
  if (fields.stream != null && typeof fields.stream !== 'boolean') throw new BadRequest(`stream must be a boolean, got ${describe(fields.stream)}`, 'stream');
  const stream = fields.stream === true;
  return { request, stream, includeUsage: streamOptions(fields.stream_options, stream) };
}

/**
 * `stream_options.include_usage`. As OpenAI does, stream_options is refused unless the answer
 * streams; `include_obfuscation` (padding on OpenAI's events) changes nothing here and is
 * accepted; any other key is refused.
 */
function streamOptions(options: unknown, stream: boolean): boolean {
  if (options === undefined || options === null) return false;
  if (!stream) throw new BadRequest('stream_options is only allowed when stream is true', 'stream_options', 400, 'invalid_value');
  if (typeof options !== 'object' || Array.isArray(options))
    throw new BadRequest(`stream_options must be an object, got ${describe(options)}`, 'stream_options');
  for (const [key, value] of Object.entries(options)) {
    const param = `stream_options.${key.length > 64 ? `${key.slice(0, 64)}…` : key}`;
    if (key !== 'include_usage' && key !== 'include_obfuscation')
      throw new BadRequest(`${param} is not a parameter this gateway knows; leave it out`, param, 400, 'unknown_parameter');
    if (value !== null && typeof value !== 'boolean') throw new BadRequest(`${param} must be a boolean, got ${describe(value)}`, param);
  }
  return (options as { include_usage?: unknown }).include_usage === true;
}

function object(body: unknown): Record<string, unknown> {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new BadRequest(`the request body must be a JSON object, got ${describe(body)}`);
  return body as Record<string, unknown>;
}

function modelOf(fields: Record<string, unknown>): string {
  if (typeof fields.model !== 'string' || fields.model === '') throw new BadRequest(`model must be a non-empty string, got ${describe(fields.model)}`, 'model');
  // The name goes back in every event of a stream: a megabyte of it would come back a thousand times.
  if (fields.model.length > MAX_MODEL_CHARS) throw new BadRequest(`model must be at most ${MAX_MODEL_CHARS} characters, got ${fields.model.length}`, 'model');
  return fields.model;
}

/** The longest model name accepted (Hugging Face ids with a LoRA name are well under it). */
export const MAX_MODEL_CHARS = 256;

/*
 * A number out of its range is refused with OpenAI's codes for it (`decimal_above_max_value`,
 * `integer_below_min_value`, …; `invalid_type` for no number, or a fraction where a whole number
 * is asked for), in the gateway's words, which name the range.
 */

function number(value: unknown, param: string, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max)
    throw new BadRequest(`${param} must be a number from ${min} to ${max}, got ${describe(value)}`, param, 400, rangeCode(value, 'decimal', min));
  return value;
}

function integer(value: unknown, param: string, min: number, max: number): number {
  if (!Number.isInteger(value) || (value as number) < min || (value as number) > max)
    throw new BadRequest(
      `${param} must be an integer from ${min} to ${max}, got ${describe(value)}`,
      param,
      400,
      Number.isInteger(value) ? rangeCode(value, 'integer', min) : 'invalid_type',
    );
  return value as number;
}

/** OpenAI's code for `value` outside a range that starts at `min`. */
function rangeCode(value: unknown, kind: 'decimal' | 'integer', min: number): string {
  if (typeof value !== 'number' || !Number.isFinite(value)) return 'invalid_type';
  return value < min ? `${kind}_below_min_value` : `${kind}_above_max_value`;
}

function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  const text = JSON.stringify(value);
  return text === undefined ? typeof value : text.length > 60 ? `${text.slice(0, 60)}…` : text;
}
