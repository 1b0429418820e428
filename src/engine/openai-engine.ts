import type { IncomingMessage } from 'node:http';
import { RpcMethod, RpcService } from '../decorators/decorators.js';
import { RpcCode, RpcError } from '../errors/errors.js';
import { DEFAULT_PRIORITY } from '../admission/options.js';
import {
  callPriority,
  isTokenIds,
  LLM_SERVICE,
  MAX_TOKEN_ID,
  promptText,
  tokenCount,
  type Embedding,
  type EmbedRequest,
  type GenerateRequest,
  type Token,
  type Usage,
} from '../inference/inference.js';
import { SplitCharacters } from './split-characters.js';
import type { CallContext } from '../call/call-context.js';
import { PushStream } from '../server/push-stream.js';
import type { EngineStall } from './engine-stall.js';
import type { KvCacheState } from './kv-events/kv-events.js';
import type { PromptTokens } from './prompt-tokens.js';
import { relaySse } from './sse.js';
import { clientFacingWords, codeOfStatus, postJson, readJson, refusedUnrun, type Upstream } from './upstream.js';

/** One chunk of an OpenAI streaming answer, completion or chat, or a whole answer: the parts read here. */
interface StreamChunk {
  model?: string;
  /** vLLM, asked for `return_token_ids`: the prompt's token ids, in the first chunk (chat). */
  prompt_token_ids?: unknown;
  choices?: Array<{
    text?: string;
    delta?: { content?: string | null; reasoning_content?: string | null; reasoning?: string | null; tool_calls?: unknown };
    message?: { content?: string | null };
    finish_reason?: string | null;
    /** The same, for a completion. */
    prompt_token_ids?: unknown;
  }>;
  usage?: { prompt_tokens?: number; completion_tokens?: number; prompt_tokens_details?: { cached_tokens?: number } | null } | null;
}

/**
 * The most the first SSE event may hold when the engine is asked for the prompt's token ids,
 * which come in it: the 1,048,576 ids of the longest prompt recorded, of up to six digits and a
 * comma, and the rest of the chunk.
 */
const MAX_TOKEN_IDS_EVENT_CHARS = 8 * 1024 * 1024;

/**
 * The most chunks in a row that carry nothing: no text, reasoning text or tool call, no finish
 * reason, no usage, no prompt token ids. An engine sends one chunk per step of a sequence, and a
 * step that makes no text is rare (a token that completes no character, a stop string held
 * back); a thousand in a row is an engine spinning, which costs the worker a parse per chunk
 * and the caller nothing but waiting, so the call fails instead.
 */
export const MAX_EMPTY_CHUNKS = 1024;

/**
 * How a call's priority (metadata `shuttle-priority`, 0 low … 9, higher first) goes into the
 * engine's request body as `priority`:
 * - `vllm`: vLLM's terms, lower first, normal at vLLM's default 0 (high 5 → -4, low 0 → 1). The
 *   engine must run with `--scheduling-policy priority`: otherwise it rejects any priority but 0.
 * - `sglang`: as is, higher first (SGLang's default order); run it with `--enable-priority-scheduling`.
 * - `none`: not sent.
 */
export type EnginePriority = 'none' | 'vllm' | 'sglang';

/** The names {@link EnginePriority} takes. */
export const ENGINE_PRIORITIES: readonly EnginePriority[] = ['none', 'vllm', 'sglang'];

/**
 * `inference.LLM` in front of an OpenAI-compatible engine (vLLM, SGLang, TGI, Ollama…):
 * `generate` becomes a streaming `/chat/completions` (a request with `messages`) or
 * `/completions` (with `prompt`) and yields the text of each SSE chunk; `embed` becomes
 * `/embeddings`. Cancelling the call, or its deadline passing, aborts the HTTP request, so the
 * engine drops the sequence and frees its batch slot at once.
 */
@RpcService({ name: LLM_SERVICE, version: '1.0.0' })
export class OpenAiEngineService {
  constructor(
    private readonly upstream: Upstream,
    /** The models the engine serves; the first when a request names none. */
    private readonly models: readonly string[],
    /** Reported as `worker` in each generation's usage. */
    private readonly workerName: string,
    /** Whether and how the call's priority is sent to the engine. */
    private readonly priority: EnginePriority = 'none',
    /** The engine's cache as its KV events tell it: each prompt's token ids are asked for and recorded there. */
    private readonly kvCache?: Pick<KvCacheState, 'recordPrompt'>,
    /** Where a prompt's token ids come from when the engine did not send them with the answer. */
    private readonly promptTokens?: Pick<PromptTokens, 'ask'>,
    /** Told of each engine request, and of everything heard for one, to notice an engine that stalls. */
    private readonly stall?: Pick<EngineStall, 'begin' | 'heard' | 'end'>,
  ) {}

  #generating = 0;

  /** Generations in flight: from the call's start until its stream closes, however it ends. */
  get generating(): number {
    return this.#generating;
  }

  @RpcMethod({ stream: true })
  async generate(request: GenerateRequest, ctx: CallContext): Promise<PushStream<Token, Usage>> {
    this.#generating++;
    this.stall?.begin();
    let stream: PushStream<Token, Usage>;
    try {
      stream = await this.#generate(request, ctx);
    } catch (error) {
      this.#generating--;
      this.stall?.end();
      throw error;
    }
    stream.onClose(() => {
      this.#generating--;
      this.stall?.end();
    });
    return stream;
  }

  async #generate(request: GenerateRequest, ctx: CallContext): Promise<PushStream<Token, Usage>> {
    const chat = checkGenerateRequest(request);
    const body: Record<string, unknown> = {
      model: this.#model(request.model),
      stream: true,
      stream_options: { include_usage: true },
      ...(chat ? { messages: request.messages } : { prompt: request.prompt }),
      ...samplingFields(request),
      ...priorityField(this.priority, callPriority(ctx.metadata)),
      ...(this.kvCache === undefined ? {} : { return_token_ids: true }),
    };
    // The transport aborts the signal when the caller cancels or the deadline passes: that
    // closes the engine request, and the engine drops the sequence.
    const signal = ctx.signal;
    const path = chat ? '/chat/completions' : '/completions';
    let response: IncomingMessage;
    try {
      response = await postJson(this.upstream, path, body, signal);
    } catch (error) {
      if (signal.aborted) throw abortError(ctx, signal.reason);
      throw error;
    }
    this.stall?.heard();
    const usage: Usage = { worker: this.workerName, promptTokens: 0, cachedTokens: 0, outputTokens: 0 };
    let pieces = 0;
    /** Chunks in a row that carried nothing (see MAX_EMPTY_CHUNKS). */
    let empty = 0;
    let kvCache = this.kvCache;
    const characters = new SplitCharacters();
    /** Takes one chunk's model, finish reason and usage into `usage`; its text, if any. */
    const take = (chunk: StreamChunk): Token | undefined => {
      if (chunk.model !== undefined) usage.model = chunk.model;
      const choice = chunk.choices?.[0];
      if (kvCache !== undefined) {
        const ids = chunk.prompt_token_ids ?? choice?.prompt_token_ids;
        if (ids !== undefined) {
          kvCache.recordPrompt(promptText(request), ids);
          kvCache = undefined;
        }
      }
      const text = chat ? (choice?.delta?.content ?? choice?.message?.content) : choice?.text;
      if (typeof choice?.finish_reason === 'string') usage.finishReason = choice.finish_reason;
      if (chunk.usage != null && typeof chunk.usage === 'object') {
        // The engine's counts are untrusted: admission charges tenants with them and clients
        // read them, so only plausible whole counts are taken (see tokenCount).
        usage.promptTokens = tokenCount(chunk.usage.prompt_tokens) ?? usage.promptTokens;
        usage.outputTokens = tokenCount(chunk.usage.completion_tokens) ?? usage.outputTokens;
        const details = chunk.usage.prompt_tokens_details;
        usage.cachedTokens = (details != null && typeof details === 'object' ? tokenCount(details.cached_tokens) : undefined) ?? usage.cachedTokens;
      }
      if (typeof text !== 'string' || text === '') {
        if (carriesSomething(chunk, choice)) empty = 0;
        else if (++empty > MAX_EMPTY_CHUNKS) {
          throw new RpcError(
            RpcCode.INTERNAL,
            `engine sent ${empty} chunks in a row without text, a tool call, a finish_reason or usage (at most ${MAX_EMPTY_CHUNKS}); the call is failed and the engine request closed`,
          );
        }
        return undefined;
      }
      empty = 0;
      pieces++;
      // A lone surrogate has no UTF-8 form and the serializers refuse to send one: a character
      // split across two chunks is rejoined, and what stays lone becomes U+FFFD.
      const whole = characters.take(text);
      return whole === '' ? undefined : { text: whole };
    };
    /** The token of a first half of a character that no second half followed, if any. */
    const flush = (): Token | undefined => {
      const rest = characters.flush();
      return rest === '' ? undefined : { text: rest };
    };
    const trailer = (done = true): Usage => {
      // An answer that ends with neither [DONE] nor a finish reason was cut short (or was never
      // a completion: an empty body, `{}`): a failure, not an empty success.
      if (!done && usage.finishReason === undefined) {
        throw new RpcError(RpcCode.UNAVAILABLE, `the engine's answer ended after ${pieces} chunks without [DONE] or a finish_reason: it was cut short`);
      }
      // An engine that sends no usage chunk (older vLLM, Ollama) still gets a count.
      if (usage.outputTokens === 0) usage.outputTokens = pieces;
      // The engine sent no prompt token ids: they are asked for apart, after the answer.
      if (kvCache !== undefined) this.promptTokens?.ask(request, body.model as string);
      return usage;
    };
    if (/^application\/json\b/i.test(response.headers['content-type'] ?? '')) {
      // An engine (or a proxy in front of it) that does not stream answers with the whole
      // completion: it becomes a stream of one chunk.
      let whole: StreamChunk;
      try {
        whole = (await readJson(response, `POST ${this.upstream.baseUrl}${path}`, this.upstream.budget)) as StreamChunk;
      } catch (error) {
        if (signal.aborted) throw abortError(ctx, signal.reason);
        throw error;
      }
      const one = new PushStream<Token, Usage>();
      const token = take(checkChunk(whole, true));
      if (token !== undefined) one.push(token);
      const rest = flush();
      if (rest !== undefined) one.push(rest);
      // A whole completion says how it finished; one without choices (`{}`, `[]`) is not one.
      if (whole === null || typeof whole !== 'object' || !Array.isArray(whole.choices) || whole.choices.length === 0) {
        throw new RpcError(RpcCode.INTERNAL, `engine answered POST ${this.upstream.baseUrl}${path} with JSON that holds no completion (no choices)`);
      }
      one.end(trailer());
      return one;
    }
    return relaySse<Token, Usage>(response, {
      budget: this.upstream.budget,
      what: `POST ${this.upstream.baseUrl}${path}`,
      // Before the first text, a chunk that only opens the answer (a role, an empty delta)
      // leaves it unstarted: the engine has produced nothing yet.
      onEvent: (data) => {
        this.stall?.heard();
        return take(parseChunk(data, pieces === 0 && usage.finishReason === undefined));
      },
      onEnd: trailer,
      flush,
      // The engine's connection broke mid-answer ("aborted", ECONNRESET).
      onBroken: (error) => new RpcError(RpcCode.UNAVAILABLE, `the engine's stream broke after ${pieces} chunks: ${error.message}`, { cause: error }),
      // The first chunk carries the prompt's token ids when they were asked for: a 200k-token
      // prompt's list is over a megabyte. Later chunks keep the usual limit.
      ...(this.kvCache === undefined ? {} : { maxFirstEventChars: MAX_TOKEN_IDS_EVENT_CHARS }),
    });
  }

  @RpcMethod({ idempotent: true })
  async embed(request: EmbedRequest, ctx: CallContext): Promise<Embedding> {
    const input = embedInput(request);
    const signal = ctx.signal;
    this.stall?.begin();
    try {
      const response = await postJson(this.upstream, '/embeddings', { model: this.#model(request.model), input }, signal);
      this.stall?.heard();
      const answer = (await readJson(response, `POST ${this.upstream.baseUrl}/embeddings`, this.upstream.budget)) as {
        data?: Array<{ embedding?: unknown }>;
        usage?: { prompt_tokens?: number };
      };
      const values = answer.data?.[0]?.embedding;
      if (!Array.isArray(values) || values.some((value) => typeof value !== 'number')) {
        throw new RpcError(RpcCode.INTERNAL, 'engine answered /embeddings without a numeric data[0].embedding (base64 encoding is not asked for)');
      }
      const promptTokens = tokenCount(answer.usage?.prompt_tokens);
      return { values: values as number[], ...(promptTokens === undefined ? {} : { promptTokens }) };
    } catch (error) {
      if (signal.aborted) throw abortError(ctx, signal.reason);
      throw error;
    } finally {
      this.stall?.end();
    }
  }

  /** The model to ask the engine for; NOT_FOUND, before any request, for one it does not serve. */
  #model(requested: string | undefined): string {
    if (requested === undefined) return this.models[0]!;
    if (typeof requested !== 'string') throw new RpcError(RpcCode.INVALID_ARGUMENT, `request.model must be a model name, got ${describe(requested)}`);
    if (!this.models.includes(requested)) {
      throw new RpcError(
        RpcCode.NOT_FOUND,
        `model ${JSON.stringify(requested)} is not served by worker ${this.workerName} (it serves ${this.models.join(', ')})`,
      );
    }
    return requested;
  }
}

/** Whether the request is a chat; throws INVALID_ARGUMENT naming the field when it is neither. */
function checkGenerateRequest(request: GenerateRequest): boolean {
  if (request === null || typeof request !== 'object') {
    throw new RpcError(RpcCode.INVALID_ARGUMENT, `${LLM_SERVICE}.generate: the request must be an object with prompt or messages, got ${describe(request)}`);
  }
  if (Array.isArray(request.messages)) return true;
  if (typeof request.prompt === 'string') return false;
  throw new RpcError(
    RpcCode.INVALID_ARGUMENT,
    `${LLM_SERVICE}.generate: request.prompt must be a string or request.messages an array, got prompt ${describe(request.prompt)}, messages ${describe(request.messages)}`,
  );
}

/** The sampling fields a request sets, under OpenAI's names. */
function samplingFields(request: GenerateRequest): Record<string, unknown> {
  const fields: Record<string, unknown> = {};
  if (request.maxTokens !== undefined) fields.max_tokens = request.maxTokens;
  if (request.temperature !== undefined) fields.temperature = request.temperature;
  if (request.topP !== undefined) fields.top_p = request.topP;
  if (request.stop !== undefined) fields.stop = request.stop;
  if (request.seed !== undefined) fields.seed = request.seed;
  if (request.presencePenalty !== undefined) fields.presence_penalty = request.presencePenalty;
  if (request.frequencyPenalty !== undefined) fields.frequency_penalty = request.frequencyPenalty;
  return fields;
}

/** The `priority` body field for a call of shuttle priority `priority`, in the engine's terms. */
function priorityField(style: EnginePriority, priority: number): { priority?: number } {
  if (style === 'vllm') return { priority: DEFAULT_PRIORITY - priority };
  if (style === 'sglang') return { priority };
  return {};
}

/** Whether a chunk without text still moves the answer on: reasoning, a tool call, its end, its usage, the prompt's ids. */
function carriesSomething(chunk: StreamChunk, choice: NonNullable<StreamChunk['choices']>[number] | undefined): boolean {
  if (chunk.usage != null || chunk.prompt_token_ids !== undefined) return true;
  if (choice === undefined || choice === null) return false;
  if (typeof choice.finish_reason === 'string' || choice.prompt_token_ids !== undefined) return true;
  const delta = choice.delta;
  if (delta === undefined || delta === null) return false;
  return (
    (typeof delta.reasoning_content === 'string' && delta.reasoning_content !== '') ||
    (typeof delta.reasoning === 'string' && delta.reasoning !== '') ||
    (Array.isArray(delta.tool_calls) && delta.tool_calls.length > 0)
  );
}

/** An SSE event's chunk; `first`: nothing of the answer came before it (see {@link checkChunk}). */
function parseChunk(data: string, first: boolean): StreamChunk {
  let chunk: StreamChunk;
  try {
    chunk = JSON.parse(data) as StreamChunk;
  } catch {
    throw new RpcError(RpcCode.INTERNAL, `engine sent an SSE event that is not JSON: ${JSON.stringify(data.slice(0, 200))}`);
  }
  return checkChunk(chunk, first);
}

/** An answer object that reports a failure: `{ error: { message, type, code } }`, or the same fields at the top with `object: "error"`. */
type ErrorChunk = StreamChunk & { object?: unknown; error?: unknown; message?: unknown; code?: unknown };

/**
 * The chunk, unless it reports a failure. vLLM and SGLang send a failure that comes after the
 * 200 as an event `data: {"error": {"message", "type", "code"}}` whose `code` is the HTTP status
 * it stands for: 400 for a request the engine refuses once it has begun, 500 for an engine
 * fault, and from SGLang 503 for a request its full waiting queue turned away
 * (`--max-queued-requests`), which for a stream is the first event of a 200 answer. The code
 * follows that status as for an answer's status line (a code that is no HTTP status: INTERNAL);
 * a 429 or 503 that comes before anything else of the answer (`first`) is marked never sent:
 * the engine did not run the request, and another may be asked.
 */
function checkChunk(chunk: ErrorChunk, first: boolean): StreamChunk {
  if (chunk === null || typeof chunk !== 'object') throw new RpcError(RpcCode.INTERNAL, `engine sent ${JSON.stringify(chunk)} where an answer object belongs`);
  const failure = chunk.error !== undefined ? chunk.error : chunk.object === 'error' ? chunk : undefined;
  if (failure === undefined) return chunk;
  const { message, code } = (failure !== null && typeof failure === 'object' ? failure : {}) as { message?: unknown; code?: unknown };
  const status = typeof code === 'number' && Number.isInteger(code) && code >= 400 && code <= 599 ? code : undefined;
  const text = typeof message === 'string' ? message.slice(0, 500) : JSON.stringify(failure)?.slice(0, 500);
  const unrun = first && status !== undefined && refusedUnrun(status, true);
  throw new RpcError(
    status === undefined ? RpcCode.INTERNAL : codeOfStatus(status),
    `engine ${unrun ? 'turned the request away' : first ? 'failed before its first token' : 'failed mid-stream'}${status === undefined ? '' : ` (${status})`}: ${text}`,
    unrun
      ? { details: { httpStatus: status, neverSent: true } }
      : status === undefined
        ? {}
        : { details: { httpStatus: status, ...(typeof message === 'string' ? clientFacingWords(status, message) : {}) } },
  );
}

/** What an aborted upstream request means for the caller: its cancel, or its deadline. */
function abortError(ctx: CallContext, reason: unknown): RpcError {
  if (reason instanceof RpcError) return reason;
  if (ctx.signal.aborted && ctx.signal.reason instanceof RpcError) return ctx.signal.reason;
  return new RpcError(RpcCode.CANCELLED, `${ctx.service}.${ctx.method}: cancelled; the engine request was closed`);
}

function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (Array.isArray(value)) return 'an array';
  return value === null ? 'null' : typeof value === 'object' ? 'an object' : `${typeof value} ${JSON.stringify(value)?.slice(0, 60)}`;
}

/**
 * The engine's `input` for an embed request: its text, or its token ids (OpenAI's token-array
 * input, which vLLM and SGLang take as it is); INVALID_ARGUMENT naming the field otherwise.
 */
function embedInput(request: EmbedRequest): string | number[] {
  if (request === null || typeof request !== 'object') {
    throw new RpcError(RpcCode.INVALID_ARGUMENT, `${LLM_SERVICE}.embed: the request must be an object with text or tokens, got ${describe(request)}`);
  }
  const { text, tokens } = request;
  if (tokens !== undefined) {
    if (text !== undefined) throw new RpcError(RpcCode.INVALID_ARGUMENT, `${LLM_SERVICE}.embed: give request.text or request.tokens, not both`);
    if (!isTokenIds(tokens)) {
      throw new RpcError(
        RpcCode.INVALID_ARGUMENT,
        `${LLM_SERVICE}.embed: request.tokens must be a non-empty array of token ids (whole numbers from 0 to ${MAX_TOKEN_ID}), got ${describe(tokens)}`,
      );
    }
    return tokens;
  }
  if (typeof text !== 'string') throw new RpcError(RpcCode.INVALID_ARGUMENT, `${LLM_SERVICE}.embed: request.text must be a string, got ${describe(text)}`);
  return text;
}
