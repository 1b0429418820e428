import { access, readFile } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { closestName } from '../common/closest-name.js';
import { envValue } from '../common/env.js';
import { invalidOption, optionKeys, show } from '../common/validate.js';

/**
 * Configuration from, in increasing priority: defaults (in createServer / createClient), a
 * config file, environment variables, and code. This module reads the file and the
 * environment; code-level options are merged over the result by createServer / createClient,
 * which validate the merged values and name the key of any bad one.
 */

/** Where configuration is read from; all optional. */
export interface ConfigSource {
  /** Folder holding `shuttle.config.json` / `shuttle.config.js` (and package.json); process cwd by default. */
  cwd?: string;
  /** Environment to read `SHUTTLE_*` from; process.env by default. */
  env?: Readonly<Record<string, string | undefined>>;
  /** An explicit config file; otherwise `SHUTTLE_CONFIG`, else the first of the two default names that exists. */
  file?: string;
}

/** The file and environment configuration, before code-level options are applied. */
export interface FileConfig {
  registry?: unknown;
  plugins?: string[];
  server: Record<string, unknown>;
  client: Record<string, unknown>;
  /** The config file that was read, if any. */
  file: string | undefined;
  /**
   * Where each option was set, by side (`top` for `registry` and `plugins`): the environment
   * variable's name or `config file <path>`. An error about a value the code did not set names
   * it ({@link explainOrigin}).
   */
  origins: { top: Record<string, string>; server: Record<string, string>; client: Record<string, string> };
}

/** The keys a config file may have: those of {@link FileConfig} but `file`, which says where it was read. */
const TOP_LEVEL_KEYS: readonly string[] = optionKeys<Omit<FileConfig, 'file' | 'origins'>>()(['registry', 'plugins', 'server', 'client']);
const FILE_NAMES = ['shuttle.config.json', 'shuttle.config.js'];

/**
 * Environment variables and the option each sets. Integers are parsed and checked here so the
 * error names the variable; every other check happens with the merged options.
 */
const ENV: ReadonlyArray<{ name: string; target: 'top' | 'server' | 'client' | 'both'; key: string; kind: 'string' | 'int' | 'list' }> = [
  { name: 'SHUTTLE_REGISTRY', target: 'top', key: 'registry', kind: 'string' },
  { name: 'SHUTTLE_PLUGINS', target: 'top', key: 'plugins', kind: 'list' },
  { name: 'SHUTTLE_HOST', target: 'server', key: 'host', kind: 'string' },
  { name: 'SHUTTLE_PORT', target: 'server', key: 'port', kind: 'int' },
  { name: 'SHUTTLE_ADVERTISE_HOST', target: 'server', key: 'advertiseHost', kind: 'string' },
  { name: 'SHUTTLE_WEIGHT', target: 'server', key: 'weight', kind: 'int' },
  { name: 'SHUTTLE_MAX_CONCURRENT_CALLS', target: 'server', key: 'maxConcurrentCalls', kind: 'int' },
  { name: 'SHUTTLE_TOKEN', target: 'both', key: 'token', kind: 'string' },
  { name: 'SHUTTLE_TIMEOUT_MS', target: 'client', key: 'timeoutMs', kind: 'int' },
  { name: 'SHUTTLE_CONNECT_TIMEOUT_MS', target: 'client', key: 'connectTimeoutMs', kind: 'int' },
  { name: 'SHUTTLE_LOADBALANCE', target: 'client', key: 'loadbalance', kind: 'string' },
  { name: 'SHUTTLE_CLUSTER', target: 'client', key: 'cluster', kind: 'string' },
  { name: 'SHUTTLE_SERIALIZER', target: 'client', key: 'serializer', kind: 'string' },
];

/** The environment variables this module reads, for documentation and `--help` texts. */
export const ENV_VARIABLES: readonly string[] = ['SHUTTLE_CONFIG', ...ENV.map((entry) => entry.name)];

/** Every `SHUTTLE_*` variable shuttle-rpc reads: this module's and the log level (src/log/log.ts). */
const KNOWN_VARIABLES: readonly string[] = [...ENV_VARIABLES, 'SHUTTLE_LOG_LEVEL'];

/**
 * Refuses a set `SHUTTLE_*` variable that shuttle-rpc does not read. Why refused, not ignored:
 * it is almost always a typo (`SHUTTLE_REGISTERY`, `SHUTTLE_TIMEOUT` for `SHUTTLE_TIMEOUT_MS`),
 * and ignoring it starts the process on the default — a provider announcing itself in this
 * host's file registry instead of etcd looks started and serves nobody. A config file's
 * unknown key is refused for the same reason.
 */
function checkVariableNames(env: Readonly<Record<string, string | undefined>>): void {
  for (const name of Object.keys(env)) {
    if (!name.startsWith('SHUTTLE_') || KNOWN_VARIABLES.includes(name) || envValue(env, name) === undefined) continue;
    // Compared without the prefix every name shares, which would make any two look alike.
    const prefix = 'SHUTTLE_';
    const suffix = closestName(
      name.slice(prefix.length),
      KNOWN_VARIABLES.map((known) => known.slice(prefix.length)),
    );
    const near = suffix === undefined ? undefined : `${prefix}${suffix}`;
    throw new TypeError(
      `shuttle-rpc: unknown environment variable ${name}${near === undefined ? '' : ` (did you mean ${near}?)`}; shuttle-rpc reads ${KNOWN_VARIABLES.join(', ')}`,
    );
  }
}

/**
 * Reads the config file (if any) and the `SHUTTLE_*` environment, environment winning.
 * Throws a TypeError naming the file, key or variable for anything malformed, and for a set
 * `SHUTTLE_*` variable that shuttle-rpc does not read (with the known name it is nearest to).
 */
export async function loadConfig(source: ConfigSource = {}): Promise<FileConfig> {
  const cwd = source.cwd ?? process.cwd();
  const env = source.env ?? process.env;
  const file = source.file ?? envValue(env, 'SHUTTLE_CONFIG') ?? (await firstExisting(cwd, FILE_NAMES));
  const config: FileConfig = { server: {}, client: {}, file: undefined, origins: { top: {}, server: {}, client: {} } };
  if (file !== undefined) {
    const resolved = path.resolve(cwd, file);
    applyFile(config, await readConfigFile(resolved), resolved);
    config.file = resolved;
  }
  applyEnv(config, env);
  return config;
}

async function firstExisting(cwd: string, names: readonly string[]): Promise<string | undefined> {
  for (const name of names) {
    try {
      await access(path.join(cwd, name));
      return name;
    } catch {
      // not there; try the next name
    }
  }
  return undefined;
}

async function readConfigFile(file: string): Promise<unknown> {
  if (file.endsWith('.json')) {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (error) {
      throw new TypeError(`shuttle-rpc: cannot read config file ${file}: ${(error as Error).message}`);
    }
    try {
      return JSON.parse(text) as unknown;
    } catch (error) {
      throw new TypeError(`shuttle-rpc: config file ${file} is not valid JSON: ${(error as Error).message}${jsonHint(text)}`);
    }
  }
  if (file.endsWith('.js') || file.endsWith('.mjs')) {
    let module: { default?: unknown };
    try {
      module = (await import(pathToFileURL(file).href)) as { default?: unknown };
    } catch (error) {
      throw new TypeError(`shuttle-rpc: config file ${file} could not be loaded: ${(error as Error).message}`);
    }
    const exported = module.default;
    return typeof exported === 'function' ? await (exported as () => unknown)() : exported;
  }
  throw invalidOption('config file', file, 'a .json, .js or .mjs file');
}

/** What most often makes a config file invalid JSON, when the text shows it: comments. */
function jsonHint(text: string): string {
  return /^\s*(\/\/|\/\*)/m.test(text) ? ' (JSON has no comments: remove them, or write shuttle.config.js, which may have them)' : '';
}

function applyFile(config: FileConfig, content: unknown, file: string): void {
  if (content === null || typeof content !== 'object' || Array.isArray(content)) {
    throw new TypeError(`shuttle-rpc: config file ${file} must hold an object, got ${show(content)}`);
  }
  const record = content as Record<string, unknown>;
  for (const key of Object.keys(record)) {
    if (!TOP_LEVEL_KEYS.includes(key)) {
      throw new TypeError(`shuttle-rpc: unknown key "${key}" in config file ${file} (known: ${TOP_LEVEL_KEYS.join(', ')})`);
    }
  }
  const origin = `config file ${file}`;
  if (record['registry'] !== undefined) {
    config.registry = record['registry'];
    config.origins.top['registry'] = origin;
  }
  if (record['plugins'] !== undefined) {
    const plugins = record['plugins'];
    if (!Array.isArray(plugins) || !plugins.every((entry) => typeof entry === 'string')) {
      throw invalidOption(`plugins in ${file}`, plugins, 'an array of module paths or package names');
    }
    // Relative plugin paths in a file are relative to the file, not to whoever loads it.
    config.plugins = plugins.map((entry) => (entry.startsWith('.') ? path.resolve(path.dirname(file), entry) : entry));
    config.origins.top['plugins'] = origin;
  }
  for (const side of ['server', 'client'] as const) {
    const value = record[side];
    if (value === undefined) continue;
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      throw invalidOption(`${side} in ${file}`, value, 'an object of options');
    }
    config[side] = { ...(value as Record<string, unknown>) };
    for (const key of Object.keys(value)) config.origins[side][key] = origin;
  }
}

function applyEnv(config: FileConfig, env: Readonly<Record<string, string | undefined>>): void {
  checkVariableNames(env);
  for (const entry of ENV) {
    const raw = envValue(env, entry.name);
    if (raw === undefined) continue;
    let value: unknown = raw;
    if (entry.kind === 'int') {
      if (!/^-?\d+$/.test(raw)) throw invalidOption(entry.name, raw, 'a decimal integer');
      value = Number(raw);
    } else if (entry.kind === 'list') {
      value = raw
        .split(',')
        .map((part) => part.trim())
        .filter((part) => part.length > 0);
    }
    if (entry.target === 'top') {
      (config as unknown as Record<string, unknown>)[entry.key] = value;
      config.origins.top[entry.key] = entry.name;
      // The variable wins over the whole file: its server and client sections may name the
      // option too, and would otherwise be merged over the top-level value.
      delete config.server[entry.key];
      delete config.client[entry.key];
    }
    for (const side of ['server', 'client'] as const) {
      if (entry.target !== side && entry.target !== 'both') continue;
      config[side][entry.key] = value;
      config.origins[side][entry.key] = entry.name;
    }
  }
}

/**
 * `error` with where its option was set, when it is a check's "invalid <option>" about a value
 * that came from the environment or a config file rather than from `code` (the options passed
 * in code, which win): `... (set by SHUTTLE_REGISTRY)`. Anything else is returned as it is.
 */
export function explainOrigin(error: unknown, config: FileConfig | undefined, side: 'server' | 'client', code: object): unknown {
  if (config === undefined || !(error instanceof TypeError)) return error;
  const key = /^shuttle-rpc: invalid ([A-Za-z]+)/.exec(error.message)?.[1];
  if (key === undefined || (code as Record<string, unknown>)[key] !== undefined) return error;
  const origin = config.origins[side][key] ?? config.origins.top[key];
  if (origin === undefined) return error;
  return new TypeError(`${error.message} (set by ${origin})`, { cause: error });
}
