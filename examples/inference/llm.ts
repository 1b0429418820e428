import { RpcMethod, RpcService, type CallContext } from 'shuttle-rpc';
import { callPriority, isTokenIds, promptText, type EmbedRequest, type Embedding, type GenerateRequest, type Token, type Usage } from 'shuttle-rpc/inference';
import { prefixBlockHashes } from 'shuttle-rpc/spi';
import type { SimEngine } from 'shuttle-rpc/testing';

export type { GenerateRequest, LlmApi, Token, Usage } from 'shuttle-rpc/inference';

/** Characters per token assumed everywhere in the examples (and by the prefix router). */
const CHARS_PER_TOKEN = 4;
const WORDS = ['the', ' model', ' routes', ' tokens', ' across', ' many', ' workers', ',', ' fast', '.'];

/**
 * `inference.LLM` backed by the simulated engine: `generate` streams tokens as the engine
 * produces them (cancellation reaches the engine, which frees the slot at its next step), and
 * returns the usage as the stream's trailer; the call's priority (set by the gateway from
 * `x-priority`) goes to the engine, which orders by it under `priority` scheduling. `embed`
 * returns a deterministic toy vector.
 */
@RpcService({ name: 'inference.LLM', version: '1.0.0' })
export class LlmWorker {
  constructor(
    private readonly engine: SimEngine,
    private readonly name: string,
  ) {}

  @RpcMethod({ stream: true })
  async *generate(request: GenerateRequest, ctx: CallContext): AsyncGenerator<Token, Usage> {
    // A chat's messages count as their text, so the gateway's chat requests work here too.
    const prompt = promptText(request);
    // 0 counts as unset: a protobuf request (the grpc example) has 0 for an absent field.
    const maxTokens = Math.min(Math.max(1, request?.maxTokens || 32), 1024);
    const generation = this.engine.generate({
      promptTokens: Math.max(1, Math.ceil(prompt.length / CHARS_PER_TOKEN)),
      // 64 characters = one 16-token KV block, the same blocks the prefix-affinity router hashes.
      promptBlocks: prefixBlockHashes(prompt, 16 * CHARS_PER_TOKEN, 4096),
      maxTokens,
      priority: callPriority(ctx.metadata),
      signal: ctx.signal,
    });
    for (;;) {
      const step = await generation.next();
      if (step.done === true) {
        const { promptTokens, cachedTokens, outputTokens } = step.value;
        // The simulated model never ends a text of its own: it stops at its token limit, the
        // request's or the default of 32, which OpenAI's clients must see as `length`.
        return { worker: this.name, promptTokens, cachedTokens, outputTokens, finishReason: outputTokens >= maxTokens ? 'length' : 'stop' };
      }
      yield { text: WORDS[step.value % WORDS.length]! };
    }
  }

  @RpcMethod({ idempotent: true })
  async embed(request: EmbedRequest): Promise<Embedding> {
    const values = new Array<number>(8).fill(0);
    // Token ids (OpenAI's token-array input) are embedded as they are; a text by its characters.
    if (isTokenIds(request?.tokens)) {
      for (let i = 0; i < request.tokens.length; i++) values[i % 8]! += (request.tokens[i]! % 1000) / 256;
      return { values, promptTokens: request.tokens.length };
    }
    const text = typeof request?.text === 'string' ? request.text : '';
    for (let i = 0; i < text.length; i++) values[i % 8]! += text.charCodeAt(i) / 256;
    return { values };
  }
}
