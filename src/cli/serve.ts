import { UsageError } from './errors.js';
import { registryUrl, type CommonOptions } from './registry-view.js';

/** Options of `shuttle worker`. */
export interface WorkerCommandOptions extends CommonOptions {
  engine: 'openai';
  url: string;
  model?: string[];
  name?: string;
  apiKey?: string;
  metricsUrl?: string;
  metrics: string;
  metricsInterval: number;
  slots: number;
  host?: string;
  port: number;
}

/** Options of `shuttle gateway`. */
export interface GatewayCommandOptions extends CommonOptions {
  port: number;
  host: string;
  loadbalance: string;
  timeout: number;
  apiKey?: string;
}

/**
 * `shuttle worker --engine openai --url …`: an engine adapter until SIGINT/SIGTERM, then a
 * graceful drain. Prints `{"ready": url, "name", "models"}` once registered.
 */
export async function runWorker(options: WorkerCommandOptions): Promise<void> {
  // Loaded here, not at the top: `shuttle ls` should not pay for the HTTP client's imports.
  const { metricNames, startEngineWorker } = await import('../engine/engine.js');
  const metrics = options.metrics === 'auto' || options.metrics === 'vllm' || options.metrics === 'sglang' ? options.metrics : parseNames(options.metrics);
  try {
    metricNames(metrics);
  } catch (error) {
    throw new UsageError(`--metrics: ${(error as Error).message}`);
  }
  const worker = await startEngineWorker({
    url: options.url,
    ...(options.model === undefined ? {} : { models: options.model }),
    ...(options.name === undefined ? {} : { name: options.name }),
    ...(options.apiKey === undefined ? {} : { apiKey: options.apiKey }),
    ...(options.metricsUrl === undefined ? {} : { metricsUrl: options.metricsUrl === 'none' ? false : options.metricsUrl }),
    metrics,
    metricsIntervalMs: options.metricsInterval,
    slots: options.slots,
    server: { registry: await registryUrl(options), port: options.port, ...(options.host === undefined ? {} : { host: options.host }) },
  });
  process.stdout.write(`${JSON.stringify({ ready: worker.server.url, name: worker.server.instances[0]?.metadata.name, models: worker.models })}\n`);
  await untilSignal();
  await worker.close();
}

/** `shuttle gateway`: the OpenAI-compatible gateway until SIGINT/SIGTERM. Prints `{"ready": url}`. */
export async function runGateway(options: GatewayCommandOptions): Promise<void> {
  const { startGateway } = await import('../gateway/gateway.js');
  const gateway = await startGateway({
    port: options.port,
    host: options.host,
    loadbalance: options.loadbalance,
    timeoutMs: options.timeout,
    ...(options.apiKey === undefined ? {} : { apiKey: options.apiKey }),
    client: { registry: await registryUrl(options) },
  });
  process.stdout.write(`${JSON.stringify({ ready: gateway.url, openai: `${gateway.url}/v1` })}\n`);
  await untilSignal();
  await gateway.close();
}

/** `running=a,b;waiting=c` style custom metric names for --metrics. */
function parseNames(spec: string): Record<string, string[]> {
  const names: Record<string, string[]> = {};
  for (const entry of spec.split(';')) {
    const at = entry.indexOf('=');
    if (at <= 0) throw new UsageError(`--metrics must be auto, vllm, sglang or field=name[,name];… (e.g. running=my_running;waiting=my_waiting), got ${JSON.stringify(spec)}`);
    names[entry.slice(0, at).trim()] = entry.slice(at + 1).split(',').map((name) => name.trim());
  }
  return names;
}

function untilSignal(): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      process.off('SIGINT', done);
      process.off('SIGTERM', done);
      resolve();
    };
    process.once('SIGINT', done);
    process.once('SIGTERM', done);
  });
}
