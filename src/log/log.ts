import { pino, type Logger } from 'pino';
import { envValue } from '../common/env.js';
import { hideCredentials } from '../common/credentials.js';
import { invalidOption } from '../common/validate.js';

export type { Logger } from 'pino';

/** Log levels, lowest first; `silent` logs nothing. */
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/**
 * The `log` option of a client or server: a pino logger of the application's (shuttle logs
 * into it with `{ component }` bindings), or settings for one of its own — `level` (`info` by
 * default, or `SHUTTLE_LOG_LEVEL`) and `stream` (standard error by default) — or `false` for
 * none.
 *
 * What is logged where: normal operation (listening, providers joining and leaving, draining,
 * reconnecting) at `debug`, so that the default `info` level is silent while all is well;
 * what an operator must see (a breaker opening, a provider ejected, a handler throwing
 * something other than an RpcError, a registry that cannot be written) at `warn` and above.
 */
export type LogOption = Logger | { level?: LogLevel; stream?: NodeJS.WritableStream } | false;

/** Builds the logger of a client or server from its `log` option; throws naming the bad value. */
export function createLogger(option: LogOption | undefined, component: 'client' | 'server' | 'gateway'): Logger {
  if (option === false) return pino({ level: 'silent' });
  if (isLogger(option)) return option.child({ component });
  if (option !== undefined && (option === null || typeof option !== 'object' || Array.isArray(option))) {
    throw invalidOption('log', option, 'a pino logger, { level, stream }, or false');
  }
  const settings = option ?? {};
  for (const key of Object.keys(settings)) {
    if (key !== 'level' && key !== 'stream') throw invalidOption(`log.${key}`, (settings as Record<string, unknown>)[key], 'only level and stream');
  }
  const level = settings.level ?? envValue(process.env, 'SHUTTLE_LOG_LEVEL') ?? 'info';
  if (!(LOG_LEVELS as readonly string[]).includes(level)) {
    throw invalidOption(settings.level === undefined ? 'SHUTTLE_LOG_LEVEL' : 'log.level', level, LOG_LEVELS.join(', '));
  }
  if (settings.stream !== undefined && typeof (settings.stream as NodeJS.WritableStream).write !== 'function') {
    throw invalidOption('log.stream', settings.stream, 'a writable stream');
  }
  if (settings.stream === undefined) return standardError().child({ component }, { level });
  return pino({ name: 'shuttle-rpc', level, base: { component }, hooks: HOOKS }, settings.stream);
}

/**
 * Every line of a logger made here is written with the credentials of the URLs in it hidden
 * (messages, errors and their stacks and causes alike): what an operator typed into a registry
 * or engine URL is quoted by errors from many layers, the dependencies' among them.
 */
const HOOKS = { streamWrite: hideCredentials };

/**
 * One logger on standard error for every client and server of the process that has no stream
 * of its own (each gets a child with its level): one destination, not one per client.
 * Synchronous writes: nothing is lost at exit, and the default level writes only on trouble.
 */
let shared: Logger | undefined;
function standardError(): Logger {
  shared ??= pino({ name: 'shuttle-rpc', level: 'trace', hooks: HOOKS }, pino.destination({ dest: 2, sync: true }));
  return shared;
}

function isLogger(value: unknown): value is Logger {
  return value !== null && typeof value === 'object' && typeof (value as Logger).child === 'function' && typeof (value as Logger).warn === 'function';
}
