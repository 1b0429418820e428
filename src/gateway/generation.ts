import { randomUUID } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import { checkedUsage, PRIORITY_METADATA, promptText, type LlmApi, type Usage } from '../inference/inference.js';
import type { Proxied } from '../proxy/proxy.js';
import type { Logger } from '../log/log.js';
import { REQUEST_ID_HEADER, streamBroken, streamShutDown } from './openai-errors.js';
import type { ParsedGeneration } from './requests.js';

/** Which OpenAI API a generation answers in. */
export type GenerationKind = 'chat' | 'completion';

/** What a generation needs from the gateway. */
export interface GenerationContext {
  readonly llm: Proxied<LlmApi>;
  readonly timeoutMs: number;
  /** The request's admission priority (0–9), sent to the worker for its engine's scheduler. */
  readonly priority: number;
  /** Fires when the HTTP client goes away, or when the gateway's drain time runs out: cancels the worker call. */
  readonly signal: AbortSignal;
  /**
   * Fires when the gateway's drain time runs out (its reason says so): a stream still running
   * is ended with a last SSE error event carrying that reason, not cut off.
   */
  readonly shutdown?: AbortSignal;
  /** The request's id, sent to the client and logged with a failure. */
  readonly requestId: string;
  readonly log: Logger;
  /** Told the call's usage once it ends (admission charges the tenant with it). */
  readonly onUsage?: (usage: Usage | undefined) => void;
  /** Told of each token the worker sent, as it comes (admission charges them when no usage comes). */
  readonly onToken?: () => void;
  /**
   * Told once a generation ends if its worker sent tokens without a text (a worker that breaks
   * the contract): they were dropped, never sent to the client as `5` or `[object Object]`.
   */
  readonly onDroppedTokens?: (count: number) => void;
}

/** A token's text, or undefined when the worker's token has none (its answers are untrusted input). */
function textOf(token: unknown): string | undefined {
  const text = (token as { text?: unknown } | null)?.text;
  return typeof text === 'string' ? text : undefined;
}

/** A non-streaming generation's answer body, in the kind's OpenAI shape. */
export async function generateOnce(kind: GenerationKind, parsed: ParsedGeneration, context: GenerationContext): Promise<{ body: unknown; worker: string }> {
  const call = startCall(parsed, context);
  let text = '';
  let dropped = 0;
  for await (const token of call) {
    context.onToken?.();
    const piece = textOf(token);
    if (piece === undefined) dropped++;
    else text += piece;
  }
  if (dropped > 0) context.onDroppedTokens?.(dropped);
  // The worker's trailer is untrusted input, read only through its checks.
  const usage = checkedUsage(await call.trailer);
  context.onUsage?.(usage);
  const id = newId(kind);
  const finishReason = finishReasonOf(usage, parsed);
  const choice =
    kind === 'chat'
      ? { index: 0, message: { role: 'assistant', content: text }, logprobs: null, finish_reason: finishReason }
      : { index: 0, text, logprobs: null, finish_reason: finishReason };
  return {
    body: {
      id,
      object: kind === 'chat' ? 'chat.completion' : 'text_completion',
      created: nowSeconds(),
      model: parsed.request.model,
      choices: [choice],
      usage: usageBody(usage),
    },
    worker: usage?.worker ?? '',
  };
}

/**
 * Streams a generation to `response` as OpenAI's SSE chunks, ending with `data: [DONE]`.
 * Headers go out once the first token has come (so a request no worker can take still gets a
 * proper 429/503 status); a failure after that is sent as a last `data: {"error": …}` event
 * saying how many tokens went out before the break (the cause is logged under the request id).
 */
export async function generateStream(kind: GenerationKind, parsed: ParsedGeneration, context: GenerationContext, response: ServerResponse): Promise<void> {
  const call = startCall(parsed, context);
  const id = newId(kind);
  const created = nowSeconds();
  const model = parsed.request.model;
  const object = kind === 'chat' ? 'chat.completion.chunk' : 'text_completion';
  // With include_usage, OpenAI gives every chunk a usage field, null but in the last one.
  const noUsage = parsed.includeUsage ? { usage: null } : {};
  const chunk = (choice: Record<string, unknown> | undefined, extra: Record<string, unknown> = noUsage): string =>
    `data: ${JSON.stringify({ id, object, created, model, choices: choice === undefined ? [] : [{ index: 0, ...choice }], ...extra })}\n\n`;
  const tokenEvent = tokenEventFramer(kind, id, created, model, parsed.includeUsage);
  // Waits for the socket to drain when the client reads slower than the worker generates:
  // the wait backs up into the worker call's flow-control window instead of into memory. No
  // promise while the socket takes the text, which is almost always.
  const write = (text: string): Promise<void> | undefined => {
    if (response.write(text) || response.destroyed) return undefined;
    // The client leaving ends the wait too: a response queued behind another on a pipelined
    // connection never emits 'drain' or 'close' once the client has gone.
    return new Promise<void>((resolve) => {
      const signal = context.signal;
      const done = (): void => {
        response.off('drain', done);
        response.off('close', done);
        signal.removeEventListener('abort', done);
        resolve();
      };
      response.on('drain', done);
      response.on('close', done);
      if (signal.aborted) return done();
      signal.addEventListener('abort', done, { once: true });
    });
  };
  const open = (): void => {
    response.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      // No Connection header of its own: Node answers keep-alive or close as the request asked
      // (a client that sent `Connection: close` reads until the connection closes).
      'x-accel-buffering': 'no',
      [REQUEST_ID_HEADER]: context.requestId,
    });
    if (kind === 'chat') response.write(chunk({ delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }));
  };
  let tokens = 0;
  let dropped = 0;
  try {
    for await (const token of call) {
      context.onToken?.();
      const text = textOf(token);
      if (text === undefined) {
        dropped++;
        continue;
      }
      if (!response.headersSent) open();
      tokens++;
      const waiting = write(tokenEvent(text));
      // The first token leaves now, not after the rest of what arrived with it: time to first
      // token is what the client feels, and Node's response holds its writes until the tick ends.
      if (tokens === 1) flushNow(response);
      if (waiting !== undefined) await waiting;
    }
    // The worker's trailer is untrusted input, read only through its checks.
    const usage = checkedUsage(await call.trailer);
    context.onUsage?.(usage);
    if (dropped > 0) context.onDroppedTokens?.(dropped);
    if (!response.headersSent) open();
    const finish = finishReasonOf(usage, parsed);
    response.write(chunk(kind === 'chat' ? { delta: {}, logprobs: null, finish_reason: finish } : { text: '', logprobs: null, finish_reason: finish }));
    if (parsed.includeUsage) response.write(chunk(undefined, { usage: usageBody(usage) }));
    response.end('data: [DONE]\n\n');
  } catch (error) {
    const shutdown = context.shutdown?.aborted === true ? context.shutdown : undefined;
    if (shutdown !== undefined && !response.destroyed) {
      if (!response.headersSent) throw shutdown.reason; // answered with a status by the caller
      response.end(`data: ${JSON.stringify(streamShutDown(tokens, context.requestId, (shutdown.reason as Error).message))}\n\n`);
      return;
    }
    if (context.signal.aborted) return; // the client left; nobody to tell
    if (!response.headersSent) throw error; // answered with a status by the caller
    context.log.error({ err: error, requestId: context.requestId, tokens }, `a ${kind} stream broke after ${tokens} tokens`);
    response.end(`data: ${JSON.stringify(streamBroken(tokens, context.requestId))}\n\n`);
  }
}

/**
 * The SSE event of one token, `data: {…}` and a blank line, exactly as JSON.stringify writes the
 * chunk object (id, object, created, model, choices: [{ index, delta: { content } | text,
 * logprobs, finish_reason }], and `usage: null` when `usageNull`) — but as fixed text around the
 * token's JSON string, so no object is built per token.
 */
export function tokenEventFramer(kind: GenerationKind, id: string, created: number, model: string | undefined, usageNull = false): (text: string) => string {
  const object = kind === 'chat' ? 'chat.completion.chunk' : 'text_completion';
  const fields = `"id":${JSON.stringify(id)},"object":"${object}","created":${JSON.stringify(created)},${model === undefined ? '' : `"model":${JSON.stringify(model)},`}`;
  const head = `data: {${fields}"choices":[{"index":0,${kind === 'chat' ? '"delta":{"content":' : '"text":'}`;
  const tail = `${kind === 'chat' ? '}' : ''},"logprobs":null,"finish_reason":null}]${usageNull ? ',"usage":null' : ''}}\n\n`;
  return (text) => `${head}${JSON.stringify(text)}${tail}`;
}

/** Sends what the response has queued in this tick instead of at the tick's end. */
function flushNow(response: ServerResponse): void {
  const socket = response.socket;
  if (socket !== null && socket.writableCorked > 0) socket.uncork();
}

function startCall(parsed: ParsedGeneration, context: GenerationContext): ReturnType<Proxied<LlmApi>['generate']> {
  return context.llm.generate(parsed.request, {
    timeoutMs: context.timeoutMs,
    signal: context.signal,
    routingKey: promptText(parsed.request),
    metadata: { [PRIORITY_METADATA]: String(context.priority) },
  });
}

/**
 * The finish reasons a worker may say, as OpenAI names them: OpenAI's own that a generation
 * without tools can have, and other engines' words for them (TGI's `eos_token` and
 * `stop_sequence`). `tool_calls` and `function_call` are not among them: the gateway asks for no
 * tools, and a client that reads them looks for tool calls that are not there.
 */
const FINISH_REASONS: ReadonlyMap<string, string> = new Map([
  ['stop', 'stop'],
  ['length', 'length'],
  ['content_filter', 'content_filter'],
  ['eos_token', 'stop'],
  ['stop_sequence', 'stop'],
  ['max_tokens', 'length'],
]);

/** OpenAI's `finish_reason` for a generation: the worker's, when it said one of {@link FINISH_REASONS}; else `length` when it produced max_tokens, `stop` otherwise. */
function finishReasonOf(usage: Usage | undefined, parsed: ParsedGeneration): string {
  const said = usage?.finishReason === undefined ? undefined : FINISH_REASONS.get(usage.finishReason);
  if (said !== undefined) return said;
  return parsed.request.maxTokens !== undefined && (usage?.outputTokens ?? 0) >= parsed.request.maxTokens ? 'length' : 'stop';
}

function usageBody(usage: Usage | undefined): Record<string, unknown> {
  const prompt = usage?.promptTokens ?? 0;
  const completion = usage?.outputTokens ?? 0;
  return {
    prompt_tokens: prompt,
    completion_tokens: completion,
    total_tokens: prompt + completion,
    ...(usage?.cachedTokens ? { prompt_tokens_details: { cached_tokens: usage.cachedTokens } } : {}),
  };
}

function newId(kind: GenerationKind): string {
  return `${kind === 'chat' ? 'chatcmpl' : 'cmpl'}-${randomUUID().replaceAll('-', '')}`;
}

function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}
