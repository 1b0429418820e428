import { startAdminServer, type AdminServer } from '../metrics/admin.js';
import { ShuttleMetrics } from '../metrics/metrics.js';
import { admissionOptions, type AdmissionFlags } from './admission-flags.js';
import { UsageError } from './errors.js';
import { registryUrl, type CommonOptions } from './registry-view.js';
import { writeErr, writeOut } from './terminal.js';
import { onShutdownSignal } from '../common/shutdown-signals.js';
import { hideCredentials } from '../common/credentials.js';

/** Options of `shuttle worker`. */
export interface WorkerCommandOptions extends CommonOptions {
  engine: 'openai';
  url: string;
  model?: string[];
  name?: string;
  apiKey?: string;
  metricsUrl?: string;
  healthUrl?: string;
  stallTimeout: number | false;
  metrics: string;
  metricsInterval: number;
  slots: number;
  maxBufferedAnswerBytes?: number;
  priority: 'none' | 'vllm' | 'sglang';
  kvEvents?: string;
  kvEventsTopic: string;
  host?: string;
  /** `--port`; when not given, the provider's configuration decides (`SHUTTLE_PORT`, else any free port). */
  port?: number;
  adminPort?: number;
}

/** Options of `shuttle gateway`. */
export interface GatewayCommandOptions extends CommonOptions, AdmissionFlags {
  port: number;
  host: string;
  loadbalance: string;
  timeout: number;
  /** `--drain-timeout`: how long a stop lets open requests finish. */
  drainTimeout: number;
  apiKey?: string;
  /** `--cors-origin`, each time it is given. */
  corsOrigin?: string[];
  adminPort?: number;
}

/**
 * `shuttle worker --engine openai --url …`: an engine adapter until SIGINT/SIGTERM, then a
 * graceful drain. Prints `{"ready": url, "name", "models", "registry"}` once registered (the
 * registry without its credentials: an operator sees where the worker announced itself).
 */
export function runWorker(options: WorkerCommandOptions): Promise<void> {
  return withShutdownSignals((stopped) => serveWorker(options, stopped));
}

async function serveWorker(options: WorkerCommandOptions, stopped: Promise<void>): Promise<void> {
  // Loaded here, not at the top: the other commands need not load the bridges' modules.
  const { metricNames, startEngineWorker } = await import('../engine/engine.js');
  const metrics = options.adminPort === undefined ? undefined : new ShuttleMetrics();
  const names = options.metrics === 'auto' || options.metrics === 'vllm' || options.metrics === 'sglang' ? options.metrics : parseNames(options.metrics);
  try {
    metricNames(names);
  } catch (error) {
    throw new UsageError(`--metrics: ${(error as Error).message}`);
  }
  const registry = await registryUrl(options);
  const worker = await startEngineWorker({
    url: options.url,
    ...(options.model === undefined ? {} : { models: options.model }),
    ...(options.name === undefined ? {} : { name: options.name }),
    ...(options.apiKey === undefined ? {} : { apiKey: options.apiKey }),
    ...(options.metricsUrl === undefined ? {} : { metricsUrl: options.metricsUrl === 'none' ? false : options.metricsUrl }),
    ...(options.healthUrl === undefined ? {} : { healthUrl: options.healthUrl === 'none' ? false : options.healthUrl }),
    metrics: names,
    metricsIntervalMs: options.metricsInterval,
    stallTimeoutMs: options.stallTimeout,
    slots: options.slots,
    ...(options.maxBufferedAnswerBytes === undefined ? {} : { maxBufferedAnswerBytes: options.maxBufferedAnswerBytes }),
    priority: options.priority,
    ...(options.kvEvents === undefined ? {} : { kvEvents: { endpoint: options.kvEvents, topic: options.kvEventsTopic } }),
    server: {
      registry,
      // Passed only when given: a default here would override SHUTTLE_PORT and the config file.
      ...(options.port === undefined ? {} : { port: options.port }),
      ...(options.host === undefined ? {} : { host: options.host }),
      ...(metrics === undefined ? {} : { filters: [{ type: 'metrics', options: { metrics } }] }),
    },
  });
  metrics?.watchServer(worker.server);
  const kvCache = worker.kvCache;
  if (kvCache !== undefined)
    metrics?.watchKvEvents({
      url: worker.server.url,
      get stats() {
        return kvCache.stats;
      },
    });
  // An admin port that cannot be had stops the worker it would watch: a worker left serving
  // with no ready line and no admin is one an operator cannot see.
  const admin =
    metrics === undefined
      ? undefined
      : await startAdminServer({ metrics, port: options.adminPort }).catch(async (error: unknown) => {
          await worker.close();
          throw error;
        });
  writeOut(
    `${JSON.stringify({ ready: worker.server.url, name: worker.server.instances[0]?.metadata.name, models: worker.models, registry: hideCredentials(registry), ...adminField(admin) })}\n`,
  );
  await stopped;
  await worker.close();
  await admin?.close();
}

/**
 * `shuttle gateway`: the OpenAI-compatible gateway until SIGINT/SIGTERM, its admission queue
 * set by the `--admission-*` flags. Prints `{"ready": url, "openai", "registry"}`.
 */
export function runGateway(options: GatewayCommandOptions): Promise<void> {
  return withShutdownSignals((stopped) => serveGateway(options, stopped));
}

async function serveGateway(options: GatewayCommandOptions, stopped: Promise<void>): Promise<void> {
  // Checked before anything starts: a bad flag is a usage error naming it.
  const admission = await admissionOptions(options);
  const { startGateway } = await import('../gateway/gateway.js');
  const { corsOrigins } = await import('../gateway/cors.js');
  const cors = options.corsOrigin === undefined ? undefined : { origins: options.corsOrigin };
  try {
    corsOrigins(cors);
  } catch (error) {
    throw new UsageError(`--cors-origin: ${(error as Error).message}`);
  }
  const metrics = options.adminPort === undefined ? undefined : new ShuttleMetrics();
  const registry = await registryUrl(options);
  const gateway = await startGateway({
    ...(metrics === undefined ? {} : { metrics }),
    port: options.port,
    host: options.host,
    loadbalance: options.loadbalance,
    timeoutMs: options.timeout,
    drainTimeoutMs: options.drainTimeout,
    ...(options.apiKey === undefined ? {} : { apiKey: options.apiKey }),
    ...(cors === undefined ? {} : { cors }),
    admission,
    client: { registry },
  });
  const admin =
    metrics === undefined
      ? undefined
      : await startAdminServer({ metrics, clients: [gateway.client], port: options.adminPort }).catch(async (error: unknown) => {
          await gateway.close();
          throw error;
        });
  writeOut(`${JSON.stringify({ ready: gateway.url, openai: `${gateway.url}/v1`, registry: hideCredentials(registry), ...adminField(admin) })}\n`);
  await stopped;
  await gateway.close();
  await admin?.close();
}

function adminField(admin: AdminServer | undefined): { admin?: string } {
  return admin === undefined ? {} : { admin: admin.url };
}

/** `running=a,b;waiting=c` style custom metric names for --metrics. */
function parseNames(spec: string): Record<string, string[]> {
  const names: Record<string, string[]> = {};
  for (const entry of spec.split(';')) {
    const at = entry.indexOf('=');
    if (at <= 0)
      throw new UsageError(
        `--metrics must be auto, vllm, sglang or field=name[,name];… (e.g. running=my_running;waiting=my_waiting), got ${JSON.stringify(spec)}`,
      );
    names[entry.slice(0, at).trim()] = entry
      .slice(at + 1)
      .split(',')
      .map((name) => name.trim());
  }
  return names;
}

/**
 * Runs `serve` with the shutdown signals (SIGTERM, SIGINT, SIGHUP) watched from before it
 * starts anything until it returns: `stopped` resolves on the first (a second exits at once,
 * saying so). Armed first, so a signal during start-up stops the server once it has started —
 * leaving the registry — instead of killing the process between its registration and a
 * listener set later, which left its records to their TTL.
 */
async function withShutdownSignals(serve: (stopped: Promise<void>) => Promise<void>): Promise<void> {
  let dispose = (): void => {};
  const stopped = new Promise<void>((resolve) => {
    dispose = onShutdownSignal(
      (signal) => {
        writeErr(`${signal}: draining, then exiting; a second signal exits at once\n`);
        resolve();
      },
      (text) => writeErr(`${text}\n`),
    );
  });
  try {
    await serve(stopped);
  } finally {
    dispose();
  }
}
