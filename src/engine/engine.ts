import { checkInt, checkKnownKeys, invalidOption, optionKeys, withoutCredentials } from '../common/validate.js';
import { createLogger, type LogOption } from '../log/log.js';
import { createServer, type RpcServer, type ServerOptions } from '../server/server.js';
import { loadConfig } from '../config/config.js';
import { AnswerBudget, DEFAULT_MAX_BUFFERED_ANSWER_BYTES } from './answer-budget.js';
import { EngineHealth } from './engine-health.js';
import { EngineStall } from './engine-stall.js';
import { EngineLoad } from './engine-load.js';
import { KvCacheState, type KvEventsOptions } from './kv-events/kv-events.js';
import { PromptTokens } from './prompt-tokens.js';
import type { EngineMetricsSpec } from './engine-metrics.js';
import { ENGINE_PRIORITIES, OpenAiEngineService, type EnginePriority } from './openai-engine.js';
import { closeUpstream, createUpstream, getJson, type Upstream } from './upstream.js';

export { ENGINE_METRIC_PRESETS, metricNames, readEngineMetrics, type EngineMetricNames, type EngineMetricsSpec, type EngineSample } from './engine-metrics.js';
export { ENGINE_PRIORITIES, OpenAiEngineService, type EnginePriority } from './openai-engine.js';
export type { KvCacheState, KvEventsOptions, KvEventsStats } from './kv-events/kv-events.js';
export type { KvMessage } from './kv-events/subscriber.js';
export type { EngineLoad, LoadFields as EngineLoadFields } from './engine-load.js';

/** Options of {@link startEngineWorker}. */
export interface EngineWorkerOptions {
  /** The engine's OpenAI API base, e.g. `http://127.0.0.1:8000/v1`. */
  url: string;
  /** Sent to the engine as a bearer token. */
  apiKey?: string;
  /** Models served; by default the engine's `GET /models`. */
  models?: readonly string[];
  /** Worker name in the registry record and in usage trailers; `engine-<pid>` by default. */
  name?: string;
  /** The engine's Prometheus endpoint; by default `/metrics` at the URL's origin; `false`: no load reporting. */
  metricsUrl?: string | false;
  /** Which metric names to read: `auto` (vLLM or SGLang, default), `vllm`, `sglang`, or names. */
  metrics?: EngineMetricsSpec;
  /** How often to read the metrics and publish the load, ms; 500 by default. Also how often the health endpoint is checked. */
  metricsIntervalMs?: number;
  /**
   * The engine's health endpoint (vLLM's and SGLang's `GET /health`); by default `/health` at
   * the URL's origin; `false`: not checked. While the engine is down — two checks in a row
   * unanswered or answered 5xx — the worker's load says draining, so consumers and gateways
   * stop sending it new calls (those that still come are forwarded); the first 2xx brings it
   * back. An engine without the endpoint (404, 405) counts as up. See {@link EngineHealth}.
   */
  healthUrl?: string | false;
  /**
   * Silence, in ms, after which an engine with requests in flight counts as stalled: none of
   * them has heard anything from it (headers, a token, an answer) for that long. A stalled
   * engine's worker says it is draining until the engine is heard again or no request waits on
   * it, so consumers stop sending it new calls, whatever their balancer. Catches an engine
   * whose step loop hangs while its HTTP front end still answers `/health` and `/metrics`.
   * 120 000 by default (long enough for one very long prompt's prefill, since the other
   * sequences of a running batch keep producing); `false`: not watched. See {@link EngineStall}.
   */
  stallTimeoutMs?: number | false;
  /**
   * Sequences the engine runs at once (vLLM's `max_num_seqs`, 256 by default there). Put in
   * the record as `slots` for the balancers; calls beyond 4 × slots are shed with
   * RESOURCE_EXHAUSTED so consumers go elsewhere instead of queueing behind a wall.
   */
  slots?: number;
  /**
   * Whether each call's priority is sent to the engine, in whose terms: `vllm` (run it with
   * `--scheduling-policy priority`), `sglang` (with `--enable-priority-scheduling`), or `none`
   * (default). See {@link EnginePriority}.
   */
  priority?: EnginePriority;
  /**
   * Follow the engine's KV-cache events (vLLM's `--kv-events-config`, over ZeroMQ) and publish
   * what its prefix cache holds as the load's `cachedPrefixes`, so every consumer routes on the
   * engine's real cache. The engine is asked for each prompt's token ids
   * (`return_token_ids`, vLLM 0.10.2 and later; else its `/tokenize` after the answer, at most
   * two at a time) to map its token blocks to the balancers' text blocks. Off by default.
   */
  kvEvents?: KvEventsOptions;
  /**
   * The most bytes of engine answers held at once while they are read, over all calls: whole JSON
   * answers (each up to 64 MiB: embeddings, a completion that does not stream, `/tokenize`) and
   * each stream's unfinished event. A call whose answer does not fit in what is left fails
   * RESOURCE_EXHAUSTED and its engine request is closed. 256 MiB by default (1 MiB .. 64 GiB).
   */
  maxBufferedAnswerBytes?: number;
  /** Everything else of the shuttle server: registry, host, port, transport, token, log… */
  server?: Omit<ServerOptions, 'services' | 'load' | 'metadata' | 'loadIntervalMs'> & { metadata?: Readonly<Record<string, unknown>> };
  log?: LogOption;
}

const WORKER_KEYS = optionKeys<EngineWorkerOptions>()([
  'url',
  'apiKey',
  'models',
  'name',
  'metricsUrl',
  'metrics',
  'metricsIntervalMs',
  'healthUrl',
  'stallTimeoutMs',
  'slots',
  'priority',
  'kvEvents',
  'maxBufferedAnswerBytes',
  'server',
  'log',
]);

/** A running engine adapter. */
export interface EngineWorker {
  readonly server: RpcServer;
  readonly models: readonly string[];
  /** The engine's load as last read from its metrics (the worker publishes it). */
  readonly load: EngineLoad | undefined;
  /** The engine's cache as its KV events tell it, when `kvEvents` is set. */
  readonly kvCache: KvCacheState | undefined;
  /** Whether the engine counts as stalled now (requests in flight, nothing heard for stallTimeoutMs), so the worker's load says draining. */
  readonly engineStalled: boolean;
  /** Whether the engine counts as down now (its health checks fail), so the worker's load says draining. */
  readonly engineDown: boolean;
  /** Bytes of engine answers held now while they are read, of `maxBufferedAnswerBytes`. */
  readonly answerBytesHeld: number;
  /** Stops reporting load and drains the server (calls in flight finish). */
  close(): Promise<void>;
}

/**
 * Registers an OpenAI-compatible engine (vLLM, SGLang, TGI, Ollama…) as an `inference.LLM`
 * provider: its record carries the model list and capacity, its load is read from the
 * engine's Prometheus metrics, and `generate`/`embed` are forwarded to the engine's HTTP API
 * (see {@link OpenAiEngineService}). `shuttle worker --engine openai --url …` runs this.
 */
export async function startEngineWorker(options: EngineWorkerOptions): Promise<EngineWorker> {
  if (options === null || typeof options !== 'object') throw invalidOption('engine worker options', options, 'an object');
  checkKnownKeys('engine worker', options, WORKER_KEYS);
  const baseUrl = checkUrl('url', options.url, true).replace(/\/+$/, '');
  const budget = new AnswerBudget(
    checkInt('engine worker maxBufferedAnswerBytes', options.maxBufferedAnswerBytes, 1024 * 1024, 64 * 1024 ** 3, DEFAULT_MAX_BUFFERED_ANSWER_BYTES),
  );
  const upstream = createUpstream(baseUrl, options.apiKey, budget);
  const log = createLogger(options.log ?? options.server?.log, 'server');
  const name = options.name ?? `engine-${process.pid}`;
  const slots = checkInt('engine worker slots', options.slots, 1, 1_000_000, 256);
  const intervalMs = checkInt('engine worker metricsIntervalMs', options.metricsIntervalMs, 50, 3_600_000, 500);
  const stallMs = options.stallTimeoutMs === false ? undefined : checkInt('engine worker stallTimeoutMs', options.stallTimeoutMs, 100, 86_400_000, 120_000);
  const priority = options.priority ?? 'none';
  if (!ENGINE_PRIORITIES.includes(priority)) throw invalidOption('engine worker priority', priority, ENGINE_PRIORITIES.map((name) => `'${name}'`).join(', '));

  // Checked before any request goes to the engine.
  const metricsUrl = options.metricsUrl === false ? undefined : checkUrl('metricsUrl', options.metricsUrl ?? `${new URL(baseUrl).origin}/metrics`, false);
  const healthUrl = options.healthUrl === false ? undefined : checkUrl('healthUrl', options.healthUrl ?? `${new URL(baseUrl).origin}/health`, false);
  if (options.models !== undefined && (!Array.isArray(options.models) || options.models.some((model) => typeof model !== 'string' || model === ''))) {
    throw invalidOption('engine worker models', options.models, 'an array of model names');
  }
  let models: string[];
  try {
    models = options.models?.length ? [...options.models] : await listModels(upstream);
  } catch (error) {
    closeUpstream(upstream);
    throw error;
  }
  const load =
    metricsUrl === undefined ? undefined : new EngineLoad(metricsUrl, options.metrics, intervalMs, (error) => log.warn({ err: error }, error.message));
  let kvCache: KvCacheState | undefined;
  try {
    kvCache = options.kvEvents === undefined ? undefined : await KvCacheState.start(options.kvEvents, log);
  } catch (error) {
    closeUpstream(upstream);
    throw error;
  }
  // vLLM and SGLang serve /tokenize at the server's root, beside /v1.
  const root = kvCache === undefined ? undefined : createUpstream(rootOf(baseUrl), options.apiKey, budget);
  const promptTokens = kvCache === undefined || root === undefined ? undefined : new PromptTokens(root, kvCache, log);
  const closeUpstreams = (): void => {
    closeUpstream(upstream);
    if (root !== undefined) closeUpstream(root);
  };
  const health =
    healthUrl === undefined
      ? undefined
      : new EngineHealth(healthUrl, intervalMs, (down, reason) =>
          down
            ? log.warn({ reason }, `the engine is down (${reason}); the worker says it is draining until the engine answers again`)
            : log.info({ reason }, `the engine answers again (${reason}); the worker takes calls again`),
        );
  await load?.start();
  // Not waited for: a hung engine's first check would hold up the worker's start for its timeout.
  void health?.start();
  const stall =
    stallMs === undefined
      ? undefined
      : new EngineStall(stallMs, (stalled, reason) =>
          stalled
            ? log.warn({ reason }, `the engine has stalled (${reason}); the worker says it is draining until the engine is heard again`)
            : log.info({ reason }, `the engine is no longer stalled (${reason}); the worker takes calls again`),
        );
  const service = new OpenAiEngineService(upstream, models, name, priority, kvCache, promptTokens, stall);
  const report = reporter(load, kvCache, health, service, stall);

  // The worker's own default (four calls a slot) goes below the operator's: a maxConcurrentCalls
  // in the configuration file or SHUTTLE_MAX_CONCURRENT_CALLS wins over it, as over any default.
  const configuredLimit =
    options.server?.maxConcurrentCalls !== undefined || options.server?.config === false
      ? undefined
      : (await loadConfig(options.server?.config ?? {})).server['maxConcurrentCalls'];
  try {
    const server = await createServer({
      ...options.server,
      services: [service],
      metadata: {
        ...options.server?.metadata,
        name,
        engine: 'openai',
        model: models[0],
        models,
        slots,
        ...(load?.kvCapacityTokens === undefined ? {} : { kvCapacityTokens: load.kvCapacityTokens }),
      },
      ...(options.server?.maxConcurrentCalls === undefined && configuredLimit === undefined ? { maxConcurrentCalls: slots * 4 } : {}),
      ...(report === undefined ? {} : { load: report, loadIntervalMs: intervalMs }),
    });
    return {
      server,
      models,
      load,
      kvCache,
      get answerBytesHeld() {
        return budget.used;
      },
      get engineDown() {
        return health?.down ?? false;
      },
      get engineStalled() {
        return stall?.stalled ?? false;
      },
      close: async () => {
        load?.stop();
        health?.stop();
        kvCache?.close();
        await server.close();
        closeUpstreams();
      },
    };
  } catch (error) {
    load?.stop();
    health?.stop();
    kvCache?.close();
    closeUpstreams();
    throw error;
  }
}

/**
 * The server's load() callback: the engine's metrics and its cache summary, each when known, and
 * draining while the engine is down (the figures read before it went down say nothing of it).
 *
 * The engine's `waiting` is raised to the worker's generations in flight beyond the engine's
 * `running`: an engine that hangs (no token comes) while its `/metrics` still answers goes on
 * reporting the figures of before, and the calls piling up at the worker must show, or every
 * balancer keeps sending calls to the engine that looks idle. While the metrics are right and
 * the engine is this worker's alone, in flight is running plus waiting, and nothing changes.
 * A stalled engine (see {@link EngineStall}) makes the worker say draining too: its `/metrics`
 * may go on reporting a healthy engine.
 */
function reporter(
  load: EngineLoad | undefined,
  kvCache: KvCacheState | undefined,
  health: EngineHealth | undefined,
  service: Pick<OpenAiEngineService, 'generating'>,
  stall: EngineStall | undefined,
): ServerOptions['load'] {
  if (load === undefined && kvCache === undefined && health === undefined && stall === undefined) return undefined;
  return () => {
    if (health?.down === true || stall?.stalled === true) return { draining: true };
    const engine = load?.current ?? {};
    const figures = engine.running === undefined ? engine : { ...engine, waiting: Math.max(engine.waiting ?? 0, service.generating - engine.running) };
    return kvCache === undefined ? figures : { ...figures, cachedPrefixes: kvCache.summary() };
  };
}

/** The server's root of an API base URL (`http://user:pw@host:8000/v1` -> `http://user:pw@host:8000`), credentials kept. */
function rootOf(baseUrl: string): string {
  const url = new URL(baseUrl);
  url.pathname = '/';
  url.search = '';
  url.hash = '';
  return url.href.replace(/\/+$/, '');
}

async function listModels(upstream: Upstream): Promise<string[]> {
  const { baseUrl } = upstream;
  let answer: unknown;
  try {
    answer = await getJson(upstream, '/models', AbortSignal.timeout(10_000));
  } catch (error) {
    throw new Error(
      `cannot list the engine's models at ${baseUrl}/models (${(error as Error).message}); is the engine up? Name them with --model to skip this`,
      { cause: error },
    );
  }
  const ids = ((answer as { data?: Array<{ id?: unknown }> })?.data ?? []).map((model) => model?.id).filter((id): id is string => typeof id === 'string');
  if (ids.length === 0) throw new Error(`the engine at ${baseUrl}/models lists no models; name them with --model`);
  return ids;
}

/**
 * `value` when it is an http(s) URL. Credentials in it are allowed for the engine's API `url`
 * only (its requests send them as a header); the metrics and health URLs are read with fetch,
 * which refuses them, so they are refused here. An error never quotes the credentials.
 */
function checkUrl(key: string, value: unknown, credentialsAllowed = false): string {
  if (typeof value === 'string') {
    let url: URL | undefined;
    try {
      url = new URL(value);
    } catch {
      // reported below
    }
    const credentials = url !== undefined && (url.username !== '' || url.password !== '');
    if (url !== undefined && credentials && !credentialsAllowed) {
      throw invalidOption(
        `engine worker ${key}`,
        withoutCredentials(value),
        'an http:// or https:// URL without user:password@ (give the engine an API key instead)',
      );
    }
    if (url !== undefined && (url.protocol === 'http:' || url.protocol === 'https:')) return value;
  }
  throw invalidOption(
    `engine worker ${key}`,
    typeof value === 'string' ? withoutCredentials(value) : value,
    'an http:// or https:// URL, e.g. http://127.0.0.1:8000/v1',
  );
}
