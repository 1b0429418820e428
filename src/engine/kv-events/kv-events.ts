/*
 * Following an engine's KV-cache events, so the worker publishes what the engine's prefix cache
 * really holds (`LoadSnapshot.cachedPrefixes`) instead of leaving every router to guess it from
 * its own traffic — and several routers in front of one fleet agree.
 *
 * The pieces: `subscriber.ts` receives the engine's ZeroMQ messages, `decode.ts` reads their
 * events, `block-table.ts` keeps the engine's cached token blocks, `prompt-ledger.ts` maps them
 * to the router's text blocks through the prompts the worker forwarded, whose token ids the
 * engine returns with the first chunk (vLLM's `return_token_ids`).
 */

import { checkInt, checkKnownKeys, invalidOption, optionKeys } from '../../common/validate.js';
import type { Logger } from '../../log/log.js';
import { ThrottledWarning } from '../../log/throttled-warning.js';
import { BlockTable } from './block-table.js';
import { type KvEvent, kvEvents } from './decode.js';
import { WorkPacer } from './pacer.js';
import { PromptLedger } from './prompt-ledger.js';
import { type KvMessage, type KvSubscription, subscribe } from './subscriber.js';

/** Where an engine publishes its KV events, and the budgets of following them. */
export interface KvEventsOptions {
  /** The engine's ZeroMQ publisher: vLLM's `--kv-events-config` `endpoint`, e.g. `tcp://127.0.0.1:5557`. */
  endpoint: string;
  /** Topic prefix to subscribe to; '' (all, vLLM's default) by default. */
  topic?: string;
  /** Characters per block as the balancers hash prompts (their `blockChars`); 64 by default. */
  blockChars?: number;
  /** Engine blocks remembered (the oldest forgotten beyond); 262,144 by default (4 Mi tokens at 16 a block). */
  maxBlocks?: number;
  /** Recent prompts whose cached part is published; 4,096 by default. */
  maxPrompts?: number;
  /** Largest event message accepted, bytes; a larger one drops the connection. 4 MiB by default. */
  maxMessageBytes?: number;
}

const KEYS = optionKeys<KvEventsOptions>()(['endpoint', 'topic', 'blockChars', 'maxBlocks', 'maxPrompts', 'maxMessageBytes']);

/** The longest prompt, in tokens, whose blocks are tracked (its first tokens, beyond). */
const MAX_PROMPT_TOKENS = 262_144;
/** The most token blocks of one prompt tracked, whatever the block size (a block size of 1 would make 262,144). */
const MAX_PROMPT_BLOCKS = 16_384;
/** Token block hashes the prompts keep in all: 16 MiB. */
const MAX_LEDGER_BLOCKS = 2 * 1024 * 1024;
/** A summary is rebuilt at most this often (it is read for every load report). */
const SUMMARY_EVERY_MS = 250;
/**
 * Messages ZeroMQ queues for this process. With `maxMessageBytes` this bounds what it buffers
 * for a publisher that sends three-frame messages; ZeroMQ bounds each frame, not the frames of
 * one message (see docs/HARDENING.md).
 */
const QUEUED_MESSAGES = 32;
/**
 * How long after the first prompt is recorded the worker waits for the engine's first event
 * before it says, once, that none came (an engine started without its KV-event publisher, or a
 * wrong endpoint, would otherwise leave the summary empty without a word).
 */
const SILENCE_WARNING_MS = 30_000;
/** A jump of the sequence further than this is a new publisher, not lost messages. */
const MAX_GAP = 1_000_000_000n;
/**
 * Blocks applied at once: a BlockStored or BlockRemoved of more is applied in pieces of this
 * many, so the worker can take a turn of its event loop between them (about 0.6 ms a piece).
 */
const PIECE_BLOCKS = 256;
/** A run of bad messages is reported once, then again after this long at the earliest. */
const WARN_EVERY_MS = 10_000;

/** Whether `value` is a ZeroMQ endpoint to connect to: `tcp://host:port` or `ipc://path`. */
function isEndpoint(value: unknown): value is string {
  if (typeof value !== 'string') return false;
  if (/^ipc:\/\/\S+$/.test(value)) return true;
  const port = /^tcp:\/\/(?:\[[0-9a-fA-F:.]+\]|[^\s:/[\]]+):(\d{1,5})$/.exec(value)?.[1];
  return port !== undefined && Number(port) >= 1 && Number(port) <= 65_535;
}

/** What following the events has seen; for logs, metrics and tests. */
export interface KvEventsStats {
  /** Messages received and events applied. */
  messages: number;
  events: number;
  /** Messages or prompts refused as malformed. */
  bad: number;
  /** Messages lost (sequence numbers skipped) and publisher restarts seen. */
  missed: number;
  restarts: number;
  /**
   * Connections to the publisher lost: the engine went away, or sent a message over
   * `maxMessageBytes` (which ZeroMQ takes as a protocol error).
   */
  disconnects: number;
  /** Prompts whose token ids the engine's /tokenize failed to give (the summary misses them). */
  tokenizeFailures: number;
  /** Engine blocks held now, and prompts remembered. */
  blocks: number;
  prompts: number;
}

/**
 * The engine's prefix cache as its events tell it, in the router's terms. {@link summary} is
 * what the worker publishes as `cachedPrefixes`; {@link recordPrompt} is told each prompt the
 * engine was given with the engine's token ids for it.
 */
export class KvCacheState {
  readonly #table: BlockTable;
  readonly #ledger: PromptLedger;
  readonly #log: Logger;
  readonly #stats: KvEventsStats = { messages: 0, events: 0, bad: 0, missed: 0, restarts: 0, disconnects: 0, tokenizeFailures: 0, blocks: 0, prompts: 0 };
  #subscription: KvSubscription | undefined;
  #closed = false;
  /** Bumped when the table starts over (a lost connection) or following stops: a message being applied then stops. */
  #epoch = 0;
  readonly #pacer = new WorkPacer();
  #lastSeq: bigint | undefined;
  #summary: readonly number[] = [];
  #builtAt = 0;
  #builtFrom = '';

  /** Where the events come from, for what the worker says about them. */
  readonly #endpoint: string;
  readonly #warning: ThrottledWarning;
  #silence: NodeJS.Timeout | undefined;
  #silenceChecked = false;

  constructor(table: BlockTable, ledger: PromptLedger, log: Logger, endpoint: string) {
    this.#table = table;
    this.#ledger = ledger;
    this.#log = log;
    this.#endpoint = endpoint;
    this.#warning = new ThrottledWarning(log, WARN_EVERY_MS, 'engine KV events: ');
  }

  /** Subscribes to the engine's publisher; resolves once the socket is set up (the engine may come later). */
  static async start(options: KvEventsOptions, log: Logger): Promise<KvCacheState> {
    if (options === null || typeof options !== 'object') throw invalidOption('engine worker kvEvents', options, 'an object with endpoint');
    checkKnownKeys('engine worker kvEvents', options, KEYS);
    if (!isEndpoint(options.endpoint)) {
      throw invalidOption(
        'engine worker kvEvents.endpoint',
        options.endpoint,
        'a ZeroMQ endpoint: tcp://host:port (port 1..65535) or ipc://path, e.g. tcp://127.0.0.1:5557',
      );
    }
    const topic = options.topic ?? '';
    if (typeof topic !== 'string' || topic.length > 255) throw invalidOption('engine worker kvEvents.topic', topic, 'a string of at most 255 characters');
    const table = new BlockTable(checkInt('engine worker kvEvents.maxBlocks', options.maxBlocks, 1, 16_777_216, 262_144));
    const ledger = new PromptLedger({
      maxPrompts: checkInt('engine worker kvEvents.maxPrompts', options.maxPrompts, 1, 65_536, 4_096),
      maxPromptTokens: MAX_PROMPT_TOKENS,
      maxPromptBlocks: MAX_PROMPT_BLOCKS,
      maxBlocks: MAX_LEDGER_BLOCKS,
      blockChars: checkInt('engine worker kvEvents.blockChars', options.blockChars, 2, 65_536, 64),
    });
    const maxMessageBytes = checkInt('engine worker kvEvents.maxMessageBytes', options.maxMessageBytes, 1024, 256 * 1024 * 1024, 4 * 1024 * 1024);
    const state = new KvCacheState(table, ledger, log, options.endpoint);
    state.#subscription = await subscribe(
      { endpoint: options.endpoint, topic, maxMessageBytes, queuedMessages: QUEUED_MESSAGES },
      (message) => state.apply(message),
      (problem) => state.#bad(problem),
      () => state.#disconnected(),
    );
    return state;
  }

  /** What has been seen so far. */
  get stats(): Readonly<KvEventsStats> {
    this.#stats.blocks = this.#table.size;
    this.#stats.prompts = this.#ledger.size;
    return { ...this.#stats, restarts: this.#stats.restarts + this.#table.blockSizeChanges };
  }

  /**
   * Records a prompt the engine was given: `text` as the balancers hash it (`promptText`), and
   * `tokenIds` as the engine answered them (untrusted: anything but an array of token ids is
   * counted as bad and ignored). Before the engine's first event the block size is not known;
   * vLLM's default, 16, is assumed.
   */
  recordPrompt(text: string, tokenIds: unknown): void {
    if (!Array.isArray(tokenIds) || tokenIds.length > 4 * MAX_PROMPT_TOKENS || !tokenIds.every((id) => Number.isInteger(id) && id >= 0 && id <= 0xffffffff)) {
      this.#bad(
        `the engine's prompt_token_ids must be an array of token ids, got ${Array.isArray(tokenIds) ? `an array of ${tokenIds.length}` : typeof tokenIds}`,
      );
      return;
    }
    this.#ledger.record(text, tokenIds as number[], this.#table.blockSize || 16);
    if (!this.#silenceChecked) {
      this.#silenceChecked = true;
      this.#silence = setTimeout(() => {
        if (this.#stats.messages > 0) return;
        this.#log.warn(
          `engine KV events: none came from ${this.#endpoint} in ${SILENCE_WARNING_MS / 1000} s of generations; is the engine publishing them there (vLLM: --kv-events-config '{"enable_kv_cache_events": true, "publisher": "zmq", "endpoint": "tcp://*:5557"}')? Until then the worker publishes no cache summary`,
        );
      }, SILENCE_WARNING_MS);
      this.#silence.unref();
    }
  }

  /** Counts a prompt whose token ids could not be had (the engine's /tokenize failed). */
  countTokenizeFailure(): void {
    this.#stats.tokenizeFailures++;
  }

  /**
   * The summary to publish as `cachedPrefixes`: the router's landmark hashes of what the engine
   * holds of the recent prompts, most recent first. Rebuilt when something changed, at most
   * every 250 ms.
   */
  summary(): readonly number[] {
    const from = `${this.#table.version}/${this.#ledger.version}`;
    if (from === this.#builtFrom) return this.#summary;
    const now = performance.now();
    if (now - this.#builtAt < SUMMARY_EVERY_MS) return this.#summary;
    this.#summary = this.#ledger.summary(this.#table);
    this.#builtAt = now;
    this.#builtFrom = from;
    return this.#summary;
  }

  /** Stops following the events. */
  close(): void {
    this.#closed = true;
    this.#epoch++;
    clearTimeout(this.#silence);
    this.#subscription?.close();
    this.#subscription = undefined;
  }

  /**
   * Applies one message, as the subscriber hands them over, one after another: its events are
   * decoded and applied a slice at a time between turns of the event loop, within the share of
   * it that {@link WorkPacer} allows. Resolves once the message is applied (or dropped); never rejects.
   */
  async apply(message: KvMessage): Promise<void> {
    await this.#pacer.ready();
    try {
      await this.#receive(message);
    } finally {
      this.#pacer.stop();
    }
  }

  async #receive(message: KvMessage): Promise<void> {
    if (this.#closed) return;
    this.#stats.messages++;
    const last = this.#lastSeq;
    this.#lastSeq = message.seq;
    if (last !== undefined && (message.seq <= last || message.seq - last > MAX_GAP)) {
      // The publisher started again (the engine restarted): its cache starts empty.
      this.#stats.restarts++;
      this.#table.clear();
    } else if (last !== undefined && message.seq > last + 1n) {
      // Lost messages: a missed store under-claims, a missed removal claims a block that is
      // gone until the engine stores it again — a cache miss, never a wrong answer.
      this.#stats.missed += Number(message.seq - last - 1n);
    }
    const epoch = this.#epoch;
    try {
      for (const event of kvEvents(message.payload)) {
        for (const piece of pieces(event)) {
          this.#table.apply(piece);
          if (!this.#pacer.due()) continue;
          await this.#pacer.rest();
          // The connection was lost or following stopped meanwhile: the table started over.
          if (epoch !== this.#epoch) return;
        }
        this.#stats.events++;
      }
    } catch (error) {
      // The events before the one refused stay applied, as with lost messages: a claim at worst wrong by a cache hit.
      this.#bad(`message ${message.seq}: ${(error as Error).message}`);
    }
  }

  /**
   * The connection to the publisher was lost: the engine most likely restarted, with an empty
   * cache, and a restarted publisher's first sequence number need not be below the last one seen.
   * So the table starts over rather than claim blocks the engine may no longer hold.
   */
  #disconnected(): void {
    this.#stats.disconnects++;
    this.#epoch++;
    this.#lastSeq = undefined;
    this.#table.clear();
  }

  #bad(problem: string): void {
    this.#stats.bad++;
    this.#warning.warn(problem);
  }
}

/**
 * An event in pieces of at most {@link PIECE_BLOCKS} blocks, applied in order with the same
 * result as the whole: each piece of a BlockStored chains to the last block of the piece before.
 */
function* pieces(event: KvEvent): Generator<KvEvent, void, undefined> {
  if (event.type === 'cleared' || event.hashes.length <= PIECE_BLOCKS) {
    yield event;
    return;
  }
  for (let from = 0; from < event.hashes.length; from += PIECE_BLOCKS) {
    const to = Math.min(event.hashes.length, from + PIECE_BLOCKS);
    const hashes = event.hashes.slice(from, to);
    if (event.type === 'removed') yield { type: 'removed', hashes };
    else {
      const tokenIds = event.tokenIds.slice(from * event.blockSize, to * event.blockSize);
      yield { ...event, hashes, tokenIds, parent: from === 0 ? event.parent : event.hashes[from - 1] };
    }
  }
}
