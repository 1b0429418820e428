import Table from 'cli-table3';
import { loadConfig } from '../config/config.js';
import { defaultRegistryUrl } from '../registry/file/file.js';
import { resolveRegistry, type Registry, type ServiceInstance } from '../registry/registry.js';
import { createContext } from '../spi/context.js';
import { writeOut } from './terminal.js';

/** Options every command takes. */
export interface CommonOptions {
  registry?: string;
  json: boolean;
}

/** The registry URL to use: `--registry`, else the environment or config file, else the embedded default. */
export async function registryUrl(options: CommonOptions): Promise<string> {
  if (options.registry !== undefined) return options.registry;
  const config = await loadConfig();
  return typeof config.registry === 'string' ? config.registry : defaultRegistryUrl();
}

/** Opens the registry named by the options; the caller closes it. */
export async function openRegistry(options: CommonOptions): Promise<{ url: string; registry: Registry }> {
  const url = await registryUrl(options);
  const context = await createContext();
  return { url, registry: resolveRegistry(url, context.extensions.registry, '--registry') };
}

/** The current records of `service` (every version and group), with their live load. */
export async function recordsOf(registry: Registry, service: string): Promise<readonly ServiceInstance[]> {
  let records: readonly ServiceInstance[] = [];
  const subscription = await registry.subscribe({ service, version: '*', group: '*' }, (instances) => (records = instances));
  subscription.close();
  return records;
}

/** Prints a table (cli-table3) with `head` and `rows`, or `json` when `--json`. */
export function print(options: CommonOptions, json: unknown, head: readonly string[], rows: readonly (readonly string[])[]): void {
  if (options.json) {
    writeOut(`${JSON.stringify(json, null, 2)}\n`);
    return;
  }
  const table = new Table({ head: [...head], style: { head: [], border: [] } });
  for (const row of rows) table.push([...row]);
  writeOut(`${table.toString()}\n`);
}

/** `host:port` plus the other protocols it serves: `127.0.0.1:4001 (grpc :5001)`. */
export function describeAddress(instance: ServiceInstance): string {
  const others = (instance.endpoints ?? []).filter((endpoint) => endpoint.protocol !== instance.protocol);
  const extra = others.map((endpoint) => `${endpoint.protocol} :${endpoint.port}`).join(', ');
  return `${instance.host}:${instance.port} ${instance.protocol}${extra === '' ? '' : `, ${extra}`}`;
}

/** Live load in a few words: `running 3, waiting 1, KV 42 %, 310 tok/s`, `draining`, or `-`. */
export function describeLoad(instance: ServiceInstance): string {
  const load = instance.load;
  if (load === undefined) return '-';
  const parts = [`running ${load.running}`, `waiting ${load.waiting}`, `KV ${Math.round(load.kvUsage * 100)} %`, `${Math.round(load.tokensPerSecond)} tok/s`];
  return load.draining ? `draining; ${parts.join(', ')}` : parts.join(', ');
}

/** Metadata as `key=value` pairs, one per line, values JSON-encoded unless they are plain strings. */
export function describeMetadata(metadata: Readonly<Record<string, unknown>>): string {
  const entries = Object.entries(metadata);
  if (entries.length === 0) return '-';
  return entries.map(([key, value]) => `${key}=${typeof value === 'string' ? value : JSON.stringify(value)}`).join('\n');
}
