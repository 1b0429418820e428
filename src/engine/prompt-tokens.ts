import type { Logger } from '../log/log.js';
import { ThrottledWarning } from '../log/throttled-warning.js';
import { promptText, type GenerateRequest } from '../inference/inference.js';
import type { KvCacheState } from './kv-events/kv-events.js';
import { postJson, readJson, type Upstream } from './upstream.js';

/** Tokenize requests in flight at once; a generation that finds them all busy is not recorded. */
const MAX_TOKENIZING = 2;
/** The longest a tokenize request may take. */
const TOKENIZE_TIMEOUT_MS = 10_000;
/**
 * The most of a tokenize answer read: the ids of the longest prompt recorded (1,048,576 of up to
 * six digits and a comma) and some. A larger answer is refused before it is parsed.
 */
const MAX_TOKENIZE_BYTES = 8 * 1024 * 1024;
/** Failures are logged at the first, then at most once a minute with the count since. */
const WARN_EVERY_MS = 60_000;

/**
 * A prompt's token ids for the engine's cache state, by the engine's `/tokenize` (vLLM's, and
 * SGLang's for plain prompts), for engines that do not return them with the first chunk
 * (`return_token_ids`: SGLang, vLLM before 0.10.2). Asked after the generation, off its path,
 * at most two at a time. An engine without the endpoint (404, 405) is not asked again.
 */
export class PromptTokens {
  readonly #upstream: Upstream;
  readonly #kvCache: Pick<KvCacheState, 'recordPrompt' | 'countTokenizeFailure'>;
  readonly #log: Logger;
  #inFlight = 0;
  #unsupported = false;
  readonly #failures: ThrottledWarning;

  /** `upstream`: the engine's server root (vLLM serves `/tokenize` there, not under `/v1`). */
  constructor(upstream: Upstream, kvCache: Pick<KvCacheState, 'recordPrompt' | 'countTokenizeFailure'>, log: Logger) {
    this.#upstream = upstream;
    this.#kvCache = kvCache;
    this.#log = log;
    this.#failures = new ThrottledWarning(log, WARN_EVERY_MS, "cannot get a prompt's token ids from the engine's /tokenize, so the cache summary misses it: ");
  }

  /** Whether the engine is still asked (it has not shown it lacks `/tokenize`). */
  get available(): boolean {
    return !this.#unsupported;
  }

  /** Asks the engine for the prompt's tokens and records them; never throws. */
  ask(request: GenerateRequest, model: string): void {
    if (this.#unsupported || this.#inFlight >= MAX_TOKENIZING) return;
    this.#inFlight++;
    void this.#ask(request, model).finally(() => this.#inFlight--);
  }

  async #ask(request: GenerateRequest, model: string): Promise<void> {
    const chat = Array.isArray(request.messages);
    // The same tokens the generation had: for a chat, the template with the assistant's turn opened.
    const body = chat ? { model, messages: request.messages, add_generation_prompt: true } : { model, prompt: request.prompt };
    try {
      const response = await postJson(this.#upstream, '/tokenize', body, AbortSignal.timeout(TOKENIZE_TIMEOUT_MS));
      const answer = (await readJson(response, `POST ${this.#upstream.baseUrl}/tokenize`, this.#upstream.budget, MAX_TOKENIZE_BYTES)) as {
        tokens?: unknown;
      } | null;
      this.#kvCache.recordPrompt(promptText(request), answer?.tokens);
    } catch (error) {
      const status = (error as { details?: { httpStatus?: unknown } }).details?.httpStatus;
      const message = (error as Error).message;
      if (status === 404 || status === 405) {
        this.#unsupported = true;
        this.#log.warn(
          `the engine returns no prompt_token_ids and has no /tokenize (${message}): its KV events cannot be mapped to prompts, so the worker publishes no cache summary`,
        );
        return;
      }
      this.#kvCache.countTokenizeFailure();
      this.#failures.warn(message);
    }
  }
}
