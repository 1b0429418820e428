/**
 * The `inference.LLM` service contract: what the simulated workers, the OpenAI engine adapter
 * (src/engine) and the OpenAI-compatible gateway (src/gateway) agree on. A worker exports
 * `generate` (server-streaming: tokens, then the usage as the trailer) and `embed` (unary,
 * idempotent); its registry record's metadata names the models it serves.
 */

import { DEFAULT_PRIORITY, MAX_PRIORITY } from '../admission/options.js';

/** The service name every LLM worker exports. */
export const LLM_SERVICE = 'inference.LLM';

/**
 * The call metadata entry that carries a generation's priority to the worker: an integer from
 * 0 (low) to 9, higher first, as admission numbers them (the gateway sets it from `x-priority`).
 * A worker passes it to an engine that schedules by priority, so an urgent call is run ahead of
 * queued, and if need be running, lower-priority work.
 */
export const PRIORITY_METADATA = 'shuttle-priority';

/**
 * The priority `metadata` carries under {@link PRIORITY_METADATA}; the default (1, normal)
 * when it carries none. Metadata comes from the peer, so anything but one digit 0–9 counts as
 * none rather than failing the call.
 */
export function callPriority(metadata: Readonly<Record<string, string>>): number {
  const value = metadata[PRIORITY_METADATA];
  return typeof value === 'string' && /^\d$/.test(value) && Number(value) <= MAX_PRIORITY ? Number(value) : DEFAULT_PRIORITY;
}

/** One chat message, as in OpenAI's chat API (content parts other than text are dropped). */
export interface ChatMessage {
  role: string;
  content: string;
  name?: string;
}

/**
 * A generation request: a completion (`prompt`) or a chat (`messages`). Sampling fields are
 * passed to engines that have them and ignored by the simulator.
 */
export interface GenerateRequest {
  /** Model to run; a worker serving one model may ignore it. */
  model?: string;
  prompt?: string;
  messages?: ChatMessage[];
  maxTokens?: number;
  temperature?: number;
  topP?: number;
  stop?: string | string[];
  seed?: number;
  presencePenalty?: number;
  frequencyPenalty?: number;
}

/** One streamed piece of output (a token or a few). */
export interface Token {
  text: string;
}

/** The trailer of a generation: usage, why it stopped, and which worker served it. */
export interface Usage {
  worker: string;
  promptTokens: number;
  cachedTokens: number;
  outputTokens: number;
  /** OpenAI's `finish_reason` (`stop`, `length`, …) when the engine said. */
  finishReason?: string;
  /** The model that served it, when the engine said. */
  model?: string;
}

/**
 * A token count as reported by an engine or a worker, when it is one: a whole number from 0 to
 * {@link MAX_REPORTED_TOKENS}. Anything else (a string, a negative or fractional number, 1e12)
 * is not a count: admission charges tenants with these and clients read them, and one absurd
 * figure charged to a tokens-per-minute budget would lock its tenant out for years.
 */
export function tokenCount(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0 && value <= MAX_REPORTED_TOKENS ? value : undefined;
}

/** More tokens than any engine holds in one request's context (today's longest are about 10 M). */
export const MAX_REPORTED_TOKENS = 100_000_000;

/**
 * A generation's trailer as a worker sent it, with only well-formed fields kept: counts through
 * {@link tokenCount} (0 when not one), short strings for the rest. Undefined when it is not an
 * object at all.
 */
export function checkedUsage(value: unknown): Usage | undefined {
  if (value === null || typeof value !== 'object') return undefined;
  const record = value as Record<string, unknown>;
  const text = (field: unknown): string | undefined => (typeof field === 'string' && field.length <= 256 ? field : undefined);
  const usage: Usage = {
    worker: text(record['worker']) ?? '',
    promptTokens: tokenCount(record['promptTokens']) ?? 0,
    cachedTokens: tokenCount(record['cachedTokens']) ?? 0,
    outputTokens: tokenCount(record['outputTokens']) ?? 0,
  };
  const finishReason = text(record['finishReason']);
  if (finishReason !== undefined) usage.finishReason = finishReason;
  const model = text(record['model']);
  if (model !== undefined) usage.model = model;
  return usage;
}

/**
 * An embedding request: one input, as text or as the token ids of the model's tokenizer
 * (OpenAI's token-array input, which clients such as LangChain's send by default). Exactly one
 * of `text` and `tokens` is given; a worker that cannot embed token ids must refuse them
 * (INVALID_ARGUMENT), never embed an empty text in their place.
 */
export interface EmbedRequest {
  text?: string;
  /** Token ids, whole numbers from 0 to {@link MAX_TOKEN_ID}. */
  tokens?: number[];
  model?: string;
}

/** The largest token id accepted (vocabularies have a few hundred thousand entries). */
export const MAX_TOKEN_ID = 2 ** 31 - 1;

/** Whether `value` is a non-empty array of token ids (whole numbers from 0 to {@link MAX_TOKEN_ID}). */
export function isTokenIds(value: unknown): value is number[] {
  if (!Array.isArray(value) || value.length === 0) return false;
  for (const id of value) if (!Number.isInteger(id) || id < 0 || id > MAX_TOKEN_ID) return false;
  return true;
}

/** An embedding: the vector, and the prompt tokens it cost when the engine said. */
export interface Embedding {
  values: number[];
  promptTokens?: number;
}

/**
 * The `details.reason` of a `generate` refusal (INVALID_ARGUMENT) whose prompt and `maxTokens`
 * do not fit in the model's context, with `details.maxContextTokens` when the engine said it: a
 * gateway tells its client so in OpenAI's words (`context_length_exceeded`), which clients act
 * on by shortening the conversation, where any other refusal carries the engine's words (`details.engineMessage`) when it gave them.
 */
export const CONTEXT_LENGTH_EXCEEDED = 'context_length_exceeded';

/**
 * The most characters of `details.engineMessage`: on a refusal of a request as invalid
 * (INVALID_ARGUMENT, NOT_FOUND), the engine's own words about what is wrong with it, which a
 * gateway passes on to its client.
 */
export const MAX_ENGINE_MESSAGE_CHARS = 500;

/** More dimensions than any embedding model has (today's largest have a few thousand). */
export const MAX_EMBEDDING_DIMENSIONS = 65_536;

/**
 * The vector of an embedding as a worker sent it, when it is one: a non-empty array of at most
 * {@link MAX_EMBEDDING_DIMENSIONS} finite numbers. Undefined otherwise (a string, `[1, "x"]`,
 * nothing), which a caller must not pass on as an embedding.
 */
export function checkedVector(embedding: unknown): number[] | undefined {
  const values = (embedding as { values?: unknown } | null)?.values;
  if (!Array.isArray(values) || values.length === 0 || values.length > MAX_EMBEDDING_DIMENSIONS) return undefined;
  for (const value of values) if (typeof value !== 'number' || !Number.isFinite(value)) return undefined;
  return values as number[];
}

/** What consumers see of `inference.LLM`. */
export interface LlmApi {
  generate(request: GenerateRequest): AsyncGenerator<Token, Usage>;
  embed(request: EmbedRequest): Promise<Embedding>;
}

/**
 * The text a request's prompt amounts to: `prompt`, or the chat messages one per line as
 * `role: content`. The simulator sizes work by it and the prefix-affinity router hashes it.
 */
export function promptText(request: Pick<GenerateRequest, 'prompt' | 'messages'> | undefined): string {
  if (typeof request?.prompt === 'string') return request.prompt;
  if (!Array.isArray(request?.messages)) return '';
  return messagesText(request.messages);
}

/**
 * Chat messages as one text, one line each, `role: content`: a content that is not a string
 * (null beside tool calls, an array of parts) counts as empty, a role that is not a string as
 * `undefined`. The consumer's default routing key is the same text, so consumers, the gateway
 * and engine workers' cache summaries name a prefix alike. Never throws, whatever the messages
 * hold (they come from callers).
 */
export function messagesText(messages: readonly unknown[]): string {
  let text = '';
  for (let i = 0; i < messages.length; i++) {
    const message = messages[i] as { role?: unknown; content?: unknown } | null | undefined;
    const role = message?.role;
    const content = message?.content;
    text += `${i === 0 ? '' : '\n'}${typeof role === 'string' ? role : 'undefined'}: ${typeof content === 'string' ? content : ''}`;
  }
  return text;
}

/**
 * The models a worker's record says it serves: metadata `models` (an array of names) or
 * `model` (one name).
 */
export function modelsOf(metadata: Readonly<Record<string, unknown>>): string[] {
  const { models, model } = metadata;
  if (Array.isArray(models)) return models.filter((name): name is string => typeof name === 'string');
  return typeof model === 'string' ? [model] : [];
}
