import { timingSafeEqual } from 'node:crypto';
import Fastify, { type FastifyReply, type FastifyRequest } from 'fastify';
import { createClient, type ClientOptions, type RpcClient } from '../client/client.js';
import { checkInt, checkKnownKeys, invalidOption, MAX_TIMER_MS, optionKeys } from '../common/validate.js';
import { RpcCode, RpcError } from '../errors/errors.js';
import { checkedVector, LLM_SERVICE, MAX_EMBEDDING_DIMENSIONS, modelsOf, promptText, tokenCount, type LlmApi } from '../inference/inference.js';
import { createLogger, type LogOption } from '../log/log.js';
import { LogBudget } from '../log/log-budget.js';
import type { ShuttleMetrics } from '../metrics/metrics.js';
import type { LoadBalancer } from '../loadbalance/loadbalance.js';
import type { ExtensionSpec } from '../common/extension-registry.js';
import { GatewayAdmission, type ChargedUsage, type GatewayAdmissionOptions } from './admission-gate.js';
import { FleetView } from './fleet-view.js';
import { callerOf } from './caller.js';
import { generateOnce, generateStream, type GenerationKind } from './generation.js';
import { requestCounter, withMetrics } from './gateway-metrics.js';
import { gatewayConnectionLimits, httpServerOptions, type GatewayHttpLimits } from './http-limits.js';

export type { GatewayHttpLimits } from './http-limits.js';
export type { GatewayCors } from './cors.js';
export type { GatewayAdmissionOptions } from './admission-options.js';
export type { TenantLimits } from '../admission/admission.js';
import { ModelBalancer, servesModel } from './model-balancer.js';
import { addCors, corsOrigins, type GatewayCors } from './cors.js';
import { BadRequest, contextLengthFailure, errorHeaders, newRequestId, REQUEST_ID_HEADER, toOpenAiError } from './openai-errors.js';
import { answerClientError, BODY_MEDIA_TYPE, fastifyRefusal, noRoute } from './http-refusals.js';
import { MAX_MODEL_CHARS, parseChat, parseCompletion, parseEmbeddings } from './requests.js';
import { checkJson } from '../serializer/json-guard.js';
import { DEFAULT_DECODE_LIMITS, type DecodeLimits } from '../serializer/decode-limits.js';
import { Transform } from 'node:stream';
import { GatewayDrain } from './drain.js';
import { listenAbort, unlistenAbort } from '../common/abort-listeners.js';
import { listenFailure } from '../common/listen-failure.js';

/** The most of a request's URL a log line quotes (Node takes up to 16 KiB of headers). */
const MAX_LOGGED_URL_CHARS = 512;

/** Options of {@link startGateway}. */
export interface GatewayOptions {
  /** Port to listen on; 8080 by default, 0 for any free one. */
  port?: number;
  /** Address to listen on; loopback by default (say `0.0.0.0` to serve other hosts). */
  host?: string;
  /** A shuttle client to call workers with, or options for one the gateway makes (and closes). */
  client?: RpcClient | ClientOptions;
  /** Load balancer over the workers of a model; `prefix-affinity` by default. */
  loadbalance?: ExtensionSpec<LoadBalancer>;
  /** Longest a generation may take, ms; 10 minutes by default. */
  timeoutMs?: number;
  /** Retry-After, in whole seconds, for a 429/503 when the workers gave no hint; 1 by default. */
  retryAfterSeconds?: number;
  /** Largest request body, bytes; 8 MiB by default. */
  maxBodyBytes?: number;
  /** When set, requests must carry `Authorization: Bearer <apiKey>`. */
  apiKey?: string;
  /**
   * Browser apps on these origins may call the gateway (CORS: preflights answered, answers
   * readable); off by default, so a web page cannot use a gateway the user runs. See {@link GatewayCors}.
   */
  cors?: GatewayCors;
  /**
   * Prometheus metrics: the gateway counts its HTTP requests by path and status in it
   * (`shuttle_gateway_requests_total`), and a client the gateway makes also reports its calls,
   * routing decisions and attempts per worker there. Serve it with `startAdminServer`.
   */
  metrics?: ShuttleMetrics;
  /**
   * Where failures from behind the gateway are logged, with the request id the HTTP client
   * is given (`x-request-id` and the error message): a pino logger, `{ level, stream }`, or
   * `false`. Standard error at `info` by default.
   */
  log?: LogOption;
  /**
   * How long `close()` lets the requests in progress finish, ms (10 s by default): meanwhile new
   * requests are answered 503 with Retry-After; past it the rest are cancelled, a stream ending
   * with a last SSE error event (code `gateway_shutting_down`).
   */
  drainTimeoutMs?: number;
  /** Time limits on HTTP clients and their connections (headers, whole request, idle, keep-alive); see {@link GatewayHttpLimits}. */
  http?: GatewayHttpLimits;
  /**
   * Admission in front of the workers: when every worker's slots are taken, requests wait in a
   * bounded queue, by priority (`x-priority`) and fair share across tenants (`x-tenant-id`, or
   * an API key's tenant), and are refused 429 only when the queue is full or the wait would
   * outlast their deadline. See {@link GatewayAdmissionOptions}; the defaults apply when omitted.
   */
  admission?: GatewayAdmissionOptions;
}

const GATEWAY_KEYS = optionKeys<GatewayOptions>()([
  'port',
  'host',
  'client',
  'loadbalance',
  'timeoutMs',
  'retryAfterSeconds',
  'maxBodyBytes',
  'apiKey',
  'cors',
  'metrics',
  'log',
  'http',
  'admission',
  'drainTimeoutMs',
]);

/** A running gateway. */
export interface Gateway {
  /** `http://host:port`; the OpenAI base URL is this plus `/v1`. */
  readonly url: string;
  readonly port: number;
  readonly client: RpcClient;
  /**
   * Graceful stop: new requests are answered 503 with Retry-After while the open ones finish,
   * for up to `drainTimeoutMs`; those still open then are ended with an answer (a stream with
   * a last SSE error event); then it stops listening and closes the client if it made it.
   * Logs what it waited for. Calling it again returns the same promise.
   */
  close(): Promise<void>;
}

/**
 * An OpenAI-compatible HTTP front for `inference.LLM` workers: `/v1/chat/completions`,
 * `/v1/completions` (both streaming as SSE or not), `/v1/embeddings` and `/v1/models`, fanned
 * out over the shuttle client with a model-aware balancer. Errors come in OpenAI's JSON shape;
 * when every worker's slots are taken requests wait in the admission queue (priority, then fair
 * share across tenants), and only a full queue or a wait past the deadline answers 429 with
 * Retry-After; a client that disconnects leaves the queue or cancels its worker call. `shuttle gateway --port 8080` runs this.
 */
export async function startGateway(options: GatewayOptions = {}): Promise<Gateway> {
  if (options === null || typeof options !== 'object') throw invalidOption('gateway options', options, 'an object');
  checkKnownKeys('gateway', options, GATEWAY_KEYS);
  const port = checkInt('gateway port', options.port, 0, 65535, 8080);
  const timeoutMs = checkInt('gateway timeoutMs', options.timeoutMs, 1, MAX_TIMER_MS, 600_000);
  const retryAfterSeconds = checkInt('gateway retryAfterSeconds', options.retryAfterSeconds, 1, 86_400, 1);
  const drainTimeoutMs = checkInt('gateway drainTimeoutMs', options.drainTimeoutMs, 0, MAX_TIMER_MS, 10_000);
  const maxBodyBytes = checkInt('gateway maxBodyBytes', options.maxBodyBytes, 1, 2 ** 31 - 1, 8 * 1024 * 1024);
  // An empty key (an unset variable on a command line) would match a request with no
  // Authorization header at all: refused, so the gateway is never open while it looks closed.
  if (options.apiKey !== undefined && (typeof options.apiKey !== 'string' || options.apiKey === '' || !isPrintableToken(options.apiKey))) {
    // The key itself is never echoed: the error goes to terminals and logs.
    const given = typeof options.apiKey === 'string' && options.apiKey !== '' ? `(hidden, ${options.apiKey.length} characters)` : options.apiKey;
    throw invalidOption('gateway apiKey', given, 'a non-empty string without spaces or control characters (an empty key would let every request in)');
  }
  const apiKey = options.apiKey === undefined ? undefined : Buffer.from(options.apiKey);
  const allowedOrigins = corsOrigins(options.cors);
  const log = createLogger(options.log, 'gateway');
  const httpOptions = httpServerOptions(options.http, timeoutMs);
  const connectionLimits = gatewayConnectionLimits(options.http);

  const ownsClient = options.client === undefined || !isClient(options.client);
  const client = isClient(options.client) ? options.client : await createClient(withMetrics(options.client ?? {}, options.metrics));
  const balancer = new ModelBalancer(client.context.extensions.loadbalance.create(options.loadbalance ?? 'prefix-affinity', 'gateway loadbalance'));
  const llm = client.proxy<LlmApi>(LLM_SERVICE, { loadbalance: balancer });
  const fleet = new FleetView(client);
  let admission: GatewayAdmission;
  try {
    admission = new GatewayAdmission(options.admission ?? {}, fleet, options.metrics);
  } catch (error) {
    if (ownsClient) await client.close();
    throw error;
  }

  // A registry that cannot be read at start is a wrong URL far more often than an outage, and a
  // gateway without its worker list can serve nothing: refused now, naming the registry and
  // why, rather than started, reported ready and answering every request 503. (Once started,
  // an outage keeps the last list, as for any client.)
  try {
    await client.ready();
  } catch (error) {
    admission.close();
    if (ownsClient) await client.close();
    throw new Error(`the gateway cannot read its registry, so it would know no workers: ${RpcError.from(error).rawMessage}`, { cause: error });
  }

  const counter = options.metrics === undefined ? undefined : requestCounter(options.metrics);
  // forceCloseConnections: once the drain is over (every request answered or ended, see
  // close()), Fastify's close closes the idle keep-alive connections instead of waiting for them.
  // Every answer names its request (x-request-id), so a client can quote the id that the log
  // has; Fastify's request id is that id, set on each reply in nameAnswer.
  const app = Fastify({
    logger: false,
    bodyLimit: maxBodyBytes,
    forceCloseConnections: true,
    genReqId: newRequestId,
    // What Fastify and Node's parser refuse before any hook runs, in OpenAI's shape too.
    frameworkErrors: (error, request, reply) => {
      counter?.answered(reply.raw, request.url);
      return fail(nameAnswer(request, reply), reply, fastifyRefusal(error, request, maxBodyBytes));
    },
    clientErrorHandler: (error, socket) => {
      const status = answerClientError(error, socket);
      if (status !== undefined) counter?.refused(status);
    },
    ...httpOptions,
  });
  app.server.maxConnections = connectionLimits.maxConnections;
  // Bodies still arriving share one budget: each byte is charged as it comes and given back
  // once the body is parsed or the request is gone.
  let bufferedBodyBytes = 0;
  app.addHook('preParsing', async (request, _reply, payload) => {
    let charged = 0;
    const release = (): void => {
      bufferedBodyBytes -= charged;
      charged = 0;
    };
    request.raw.once('close', release);
    requestReleases.set(request, release);
    const counted = new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        if (bufferedBodyBytes + chunk.length > connectionLimits.maxBufferedBodyBytes) {
          callback(
            new BadRequest(
              `the gateway is receiving ${bufferedBodyBytes} bytes of request bodies, its limit (http.maxBufferedBodyBytes ${connectionLimits.maxBufferedBodyBytes}); try again shortly`,
              null,
              503,
              null,
              retryAfterSeconds,
            ),
          );
          return;
        }
        bufferedBodyBytes += chunk.length;
        charged += chunk.length;
        // Fastify compares the bytes received with content-length through this property.
        (counted as unknown as { receivedEncodedLength: number }).receivedEncodedLength += chunk.length;
        callback(null, chunk);
      },
    });
    (counted as unknown as { receivedEncodedLength: number }).receivedEncodedLength = 0;
    payload.on('error', (error) => counted.destroy(error));
    return payload.pipe(counted);
  });
  const requestReleases = new WeakMap<FastifyRequest, () => void>();
  app.addHook('preValidation', async (request) => requestReleases.get(request)?.());
  app.addHook('onRequest', async (request, reply) => void nameAnswer(request, reply));
  const drain = new GatewayDrain();
  // Every request behind the gateway can fail alike (no worker up, an engine refusing every
  // prompt): a line per request, with a stack and its URL, would be a line per request a
  // client can send.
  const failureLines = new LogBudget(50, 10);
  /** Lines about workers that broke the contract in a way the gateway repaired (tokens without text). */
  const contractLines = new LogBudget(10, 1);
  /** The OpenAI answer for `error`; what came from behind the gateway is logged under the request id (within the lines' budget). */
  const answerFor = (request: FastifyRequest, error: unknown): ReturnType<typeof toOpenAiError> => {
    const requestId = request.id;
    // Once the drain time has run out, whatever a request still open failed with (a cancelled
    // worker call, a queue wait ended) is the shutdown's doing: the client is told that.
    const answer = toOpenAiError(drain.signal.aborted ? drain.signal.reason : error, retryAfterSeconds, requestId);
    const held = answer.internal ? failureLines.take() : undefined;
    if (held !== undefined) {
      const more = held === 0 ? '' : `; ${held} failed requests before it were not logged (over ${failureLines.perSecond} lines a second)`;
      log[answer.status >= 500 ? 'error' : 'warn'](
        { err: error, requestId, status: answer.status, path: request.url.slice(0, MAX_LOGGED_URL_CHARS), ...(held === 0 ? {} : { notLogged: held }) },
        `${request.method} ${request.url.slice(0, MAX_LOGGED_URL_CHARS)} failed with ${answer.status}${more}`,
      );
    }
    return answer;
  };
  const fail = (request: FastifyRequest, reply: FastifyReply, error: unknown): FastifyReply => {
    const answer = answerFor(request, error);
    if (answer.retryAfterSeconds !== undefined) void reply.header('retry-after', String(answer.retryAfterSeconds));
    return reply.code(answer.status).send(answer.body);
  };
  if (counter !== undefined) app.addHook('onRequest', async (request, reply) => counter.answered(reply.raw, request.url));
  // Every request is counted until its answer ends, so a drain knows what it waits for; one
  // that comes while draining is refused (health checks too: a load balancer takes the
  // gateway out) and its connection closed after the answer.
  app.addHook('onRequest', async (_request, reply) => {
    drain.track(reply.raw);
    if (!drain.draining) return;
    void reply.header('connection', 'close');
    throw drain.refusal(retryAfterSeconds);
  });
  app.setErrorHandler((error, request, reply) => fail(request, reply, fastifyRefusal(error, request, maxBodyBytes)));
  // JSON bodies are priced before they are parsed (nesting depth, values, keys, decoded size),
  // as RPC payloads are: JSON.parse builds everything at once, so 8 MB of nested brackets cost
  // a second of the event loop and hundreds of megabytes, and later code that walks the value
  // recursively overflowed the stack. Fastify's own parser then parses (it refuses prototype keys).
  const parseJson = app.getDefaultJsonParser('error', 'error');
  // Fastify also parses text/plain by default; a body of any type but JSON is refused 415.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser(BODY_MEDIA_TYPE, { parseAs: 'string' }, (request, body, done) => {
    try {
      checkJson(body as string, Buffer.byteLength(body as string), BODY_LIMITS);
    } catch (error) {
      done(new BadRequest(`the request body is refused: ${RpcError.from(error).rawMessage}`), undefined);
      return;
    }
    parseJson(request, body as string, done);
  });
  app.setNotFoundHandler((request, reply) => {
    const path = request.url.split('?')[0]!;
    const allowed = ROUTE_METHODS.filter((method) => app.hasRoute({ method, url: path }));
    if (allowed.length > 0) void reply.header('allow', allowed.join(', '));
    return fail(request, reply, noRoute(request.method, request.url, allowed));
  });
  // Before the API key's check: a browser's preflight carries no credentials.
  if (allowedOrigins !== undefined) addCors(app, allowedOrigins);
  if (apiKey !== undefined) {
    app.addHook('onRequest', async (request) => {
      const given = Buffer.from(/^Bearer (.+)$/i.exec(request.headers.authorization ?? '')?.[1] ?? '');
      if (given.length !== apiKey.length || !timingSafeEqual(given, apiKey))
        throw new BadRequest('missing or wrong API key (Authorization: Bearer …)', null, 401, 'invalid_api_key');
    });
  }

  /** Resolves once the first provider list has loaded; after that, at once. */
  let loaded = false;
  const ready = async (): Promise<void> => {
    if (loaded) return;
    await client.ready();
    loaded = true;
  };
  /** The models the workers serve now; waits for the first provider list. */
  const models = async (): Promise<string[]> => {
    await ready();
    const names = new Set<string>();
    for (const provider of fleet.workers()) for (const model of modelsOf(provider.metadata)) names.add(model);
    return [...names].sort();
  };
  /** NOT_FOUND when no worker serves `model`; UNAVAILABLE when there are no workers. */
  const checkModel = async (model: string): Promise<void> => {
    await ready();
    const workers = fleet.workers();
    if (workers.length === 0) throw new BadRequest(`no ${LLM_SERVICE} workers are registered`, null, 503, null, retryAfterSeconds);
    if (!workers.some((worker) => servesModel(worker.metadata, model))) {
      throw new BadRequest(
        `the model ${JSON.stringify(model)} does not exist here; served: ${(await models()).join(', ') || 'none named'}`,
        'model',
        404,
        'model_not_found',
      );
    }
  };
  /**
   * Aborts when the HTTP client disconnects before its answer is complete. The socket is
   * watched as well as the response: a response queued behind an earlier one on a pipelined
   * connection never emits 'close' when the client goes away, and its call would hold its
   * admission slot for good. A client that sent its request and closed at once is gone before
   * the handler runs (its 'close' has been emitted already): the signal is aborted from the
   * start, or the request would wait in the queue and run on a worker for nobody.
   */
  const clientGone = (reply: FastifyReply): AbortSignal => {
    const controller = new AbortController();
    const response = reply.raw;
    const socket = response.socket ?? reply.request.raw.socket;
    const shutdown = (): void => controller.abort(drain.signal.reason);
    const gone = (): void => {
      socket?.off('close', gone);
      unlistenAbort(drain.signal, shutdown);
      if (!response.writableFinished) controller.abort(new RpcError(RpcCode.CANCELLED, 'the HTTP client disconnected'));
    };
    if (response.destroyed || socket?.destroyed === true) {
      gone();
      return controller.signal;
    }
    // One listener on the drain's signal for all requests (listenAbort): a listener each would
    // pass Node's 10 and print a MaxListenersExceededWarning with the 11th request open.
    if (drain.signal.aborted) shutdown();
    else listenAbort(drain.signal, shutdown);
    response.once('close', gone);
    socket?.once('close', gone);
    // A keep-alive socket outlives its requests: its listeners go with the answer.
    response.once('finish', () => {
      socket?.off('close', gone);
      unlistenAbort(drain.signal, shutdown);
    });
    return controller.signal;
  };
  const generation = (kind: GenerationKind) => async (request: FastifyRequest, reply: FastifyReply) => {
    const parsed = kind === 'chat' ? parseChat(request.body) : parseCompletion(request.body);
    // The parsed request is all the call needs; the body (with the fields the gateway ignores,
    // up to maxBodyBytes of them) would otherwise be held for as long as the request queues.
    request.body = undefined;
    const caller = callerOf(request, admission.apiKeyTenants);
    const signal = clientGone(reply);
    await checkModel(parsed.request.model);
    const requestId = request.id;
    const promptTokens = Math.ceil(promptText(parsed.request).length / 4);
    const estimate = promptTokens + (parsed.request.maxTokens ?? 256);
    // Tokens the worker sent: the charge of a call that ends without the worker's usage.
    let sent = 0;
    const spent = (): ChargedUsage => ({ promptTokens, outputTokens: sent });
    return admission.run(
      caller,
      estimate,
      timeoutMs,
      signal,
      async (timeLeftMs) => {
        let usage: ChargedUsage | undefined;
        const context = {
          llm,
          timeoutMs: timeLeftMs,
          priority: caller.priority,
          signal,
          shutdown: drain.signal,
          requestId,
          log,
          // No prompt has no tokens: a count of 0 is an engine that reported none (the worker
          // counts only the output then), and the tenant is charged the gateway's estimate of
          // the prompt instead, or a long prompt to such an engine would cost its share nothing.
          onUsage: (used: ChargedUsage | undefined) =>
            void (usage = used === undefined ? undefined : { ...used, promptTokens: used.promptTokens || promptTokens }),
          onToken: () => void sent++,
          onDroppedTokens: (count: number) => {
            const held = contractLines.take();
            if (held === undefined) return;
            log.warn(
              { requestId, dropped: count, ...(held === 0 ? {} : { notLogged: held }) },
              `a worker sent ${count} tokens without a text; they were dropped`,
            );
          },
        };
        // What a context-length refusal names: the part of the request that is too long.
        const promptParam = kind === 'chat' ? 'messages' : 'prompt';
        if (!parsed.stream) {
          const answer = await generateOnce(kind, parsed, context).catch((error: unknown) => {
            throw contextLengthFailure(error, promptParam);
          });
          return { value: reply.header('x-shuttle-worker', answer.worker).send(answer.body), usage };
        }
        reply.hijack();
        try {
          await generateStream(kind, parsed, context, reply.raw);
        } catch (error) {
          const answer = answerFor(request, contextLengthFailure(error, promptParam));
          reply.raw.writeHead(answer.status, errorHeaders(answer, requestId));
          reply.raw.end(JSON.stringify(answer.body));
        }
        return { value: reply, usage };
      },
      spent,
    );
  };

  app.post('/v1/chat/completions', generation('chat'));
  app.post('/v1/completions', generation('completion'));
  app.post('/v1/embeddings', async (request, reply) => {
    const parsed = parseEmbeddings(request.body);
    request.body = undefined;
    const caller = callerOf(request, admission.apiKeyTenants);
    const signal = clientGone(reply);
    await checkModel(parsed.model);
    // One idempotent call per input, spread over the workers (retried elsewhere on failure),
    // each admitted as a part of the request: the first to fail cancels the others.
    // A token-id input costs what it holds; a text about four characters a token.
    const estimate = (input: string | number[]): number => (typeof input === 'string' ? Math.ceil(input.length / 4) : input.length);
    const answers = await admission.fanOut(caller, parsed.inputs, estimate, timeoutMs, signal, async (input, timeLeftMs, partSignal) => {
      const request = typeof input === 'string' ? { text: input, model: parsed.model } : { tokens: input, model: parsed.model };
      const routingKey = typeof input === 'string' ? input : input.join(' ');
      const answer = await llm.embed(request, { timeoutMs: timeLeftMs, signal: partSignal, routingKey });
      // The worker's answer is untrusted input: only a vector of numbers goes to the client.
      const values = checkedVector(answer);
      if (values === undefined) {
        throw new RpcError(RpcCode.INTERNAL, `a worker answered embed without a vector of at most ${MAX_EMBEDDING_DIMENSIONS} finite numbers`);
      }
      return { value: { values, promptTokens: answer.promptTokens }, usage: { promptTokens: tokenCount(answer.promptTokens) ?? estimate(input) } };
    });
    const promptTokens = answers.reduce((total, answer, index) => total + (tokenCount(answer.promptTokens) ?? estimate(parsed.inputs[index]!)), 0);
    return reply.send({
      object: 'list',
      model: parsed.model,
      data: answers.map((answer, index) => ({
        object: 'embedding',
        index,
        embedding: parsed.base64 ? Buffer.from(new Float32Array(answer.values).buffer).toString('base64') : answer.values,
      })),
      usage: { prompt_tokens: promptTokens, total_tokens: promptTokens },
    });
  });
  app.get('/v1/models', async (_request, reply) => reply.send({ object: 'list', data: (await models()).map(modelObject) }));
  // A model's id may hold slashes (`meta-llama/Llama-3.1-8B-Instruct`): the openai client sends
  // them escaped, curl as they are; the wildcard takes both.
  app.get('/v1/models/*', async (request, reply) => {
    const id = (request.params as { '*': string })['*'];
    if (id.length > MAX_MODEL_CHARS)
      throw new BadRequest(`no model has a name of ${id.length} characters (at most ${MAX_MODEL_CHARS})`, 'model', 404, 'model_not_found');
    await checkModel(id);
    return reply.send(modelObject(id));
  });
  app.get('/health', async (_request, reply) => reply.send({ status: 'ok' }));

  try {
    await app.listen({ port, host: options.host ?? '127.0.0.1' });
  } catch (error) {
    admission.close();
    if (ownsClient) await client.close();
    throw listenFailure(error, 'the gateway', options.host ?? '127.0.0.1', port);
  }
  let closing: Promise<void> | undefined;
  const address = app.server.address();
  const bound = typeof address === 'object' && address !== null ? address.port : port;
  const host = options.host ?? '127.0.0.1';
  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${bound}`,
    port: bound,
    client,
    close: () => {
      closing ??= (async () => {
        const outcome = await drain.drain(drainTimeoutMs);
        if (outcome.cut > 0) {
          log.warn(
            { ...outcome, drainTimeoutMs },
            `drained in ${outcome.waitedMs} ms: ${outcome.cut} of ${outcome.open} open requests were still running at drainTimeoutMs (${drainTimeoutMs} ms) and were ended with a 503 or a last stream error event`,
          );
        } else if (outcome.open > 0) {
          log.info(outcome, `drained in ${outcome.waitedMs} ms: the ${outcome.open} open requests finished`);
        }
        admission.close();
        await app.close();
        if (ownsClient) await client.close();
      })();
      return closing;
    },
  };
}

/** A model as `/v1/models` lists it; no creation time is known (0). */
function modelObject(id: string): { id: string; object: 'model'; created: number; owned_by: string } {
  return { id, object: 'model', created: 0, owned_by: 'shuttle' };
}

/** The methods a 405's Allow header can list (HEAD comes with each GET route). */
const ROUTE_METHODS = ['GET', 'HEAD', 'POST'] as const;

/** Names the answer to `request` with its id (the x-request-id header); returns `request`. */
function nameAnswer(request: FastifyRequest, reply: FastifyReply): FastifyRequest {
  void reply.header(REQUEST_ID_HEADER, request.id);
  return request;
}

/** What a request body may hold: JSON nested at most 32 deep, and far fewer values than an RPC payload. */
const BODY_LIMITS: DecodeLimits = { ...DEFAULT_DECODE_LIMITS, maxDepth: 32, maxElements: 200_000 };

function isClient(value: unknown): value is RpcClient {
  return value !== null && typeof value === 'object' && typeof (value as RpcClient).proxy === 'function';
}

/** Whether `key` has no whitespace and no control characters (what a bearer token can carry). */
function isPrintableToken(key: string): boolean {
  for (let index = 0; index < key.length; index++) {
    const code = key.charCodeAt(index);
    if (code <= 0x20 || code === 0x7f) return false;
  }
  return !/\s/.test(key);
}
