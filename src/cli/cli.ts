import { createRequire } from 'node:module';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { RpcError } from '../errors/errors.js';
import { addAdmissionFlags } from './admission-flags.js';
import { runBench } from './bench.js';
import { runCall } from './call.js';
import { runDescribe } from './describe.js';
import { Cancelled, UsageError } from './errors.js';
import { runLs } from './ls.js';
import { runGateway, runWorker } from './serve.js';
import type { CommonOptions } from './registry-view.js';
import { writeErr } from './terminal.js';

/**
 * The `shuttle` command: look at a registry and poke services by hand, as grpcurl and Dubbo's
 * QoS commands do. Every command reads the registry named by `--registry` (else the
 * `SHUTTLE_REGISTRY` environment or config file, else this host's embedded file registry),
 * prints human tables by default and JSON with `--json`.
 *
 * Exit codes: 0 done, 1 the call or registry failed (the RpcError is printed), 2 bad usage,
 * 130 cancelled with Ctrl-C.
 */
export async function runCli(argv: readonly string[]): Promise<number> {
  const program = new Command('shuttle')
    .description('Look at a shuttle-rpc registry, call its services by hand, and bridge OpenAI-compatible engines and clients.')
    .showHelpAfterError('(run with --help for usage)')
    // `--version <version>` of call and bench is the service's version: the program's own
    // `-V, --version` is read only before the command name, never after it.
    .enablePositionalOptions()
    .version(packageVersion(), '-V, --version', "print shuttle-rpc's version")
    .exitOverride();
  const common = (command: Command): Command =>
    command
      .option('--registry <url>', "registry URL: etcd://host:port, file://dir, shuttle://host:port (default: SHUTTLE_REGISTRY, else this host's file registry)")
      .option('--json', 'print JSON for scripts instead of tables', false);
  const calling = (command: Command): Command =>
    common(command)
      .option('--timeout <ms>', 'deadline of each call in ms', positiveInt, 30_000)
      .option('--version <version>', 'service version (default: any)')
      .option('--group <group>', 'service group (default: the default group)')
      .addOption(new Option('--transport <name>', 'transport to call over').choices(['tcp', 'grpc']).default('tcp'))
      .option('--proto <file...>', "with --transport grpc: .proto files declaring the service (default: the provider's server reflection)")
      .option('--token <token>', 'token to send (when the provider requires one)')
      .option('-m, --metadata <key=value...>', 'call metadata entries', collectMetadata, {});

  common(program.command('ls'))
    .description('list services, versions and providers with their metadata and live load')
    .action(async (options: CommonOptions) => runLs(options));
  common(program.command('describe'))
    .description('show the methods of a service and who provides it')
    .argument('<service>', 'service name, e.g. inference.LLM')
    .action(async (service: string, options: CommonOptions) => runDescribe(service, options));
  calling(program.command('call'))
    .description('call a method once; streams print each chunk as it arrives, Ctrl-C cancels')
    .argument('<service.method>', 'e.g. inference.LLM.generate (or the .proto rpc name: inference.LLM.Generate)')
    .argument('[request]', 'the request as JSON, e.g. \'{"prompt":"hi"}\'', 'null')
    .action(async (target: string, request: string, options) => runCall(target, request, options));
  calling(program.command('bench'))
    .description('run a short load against a method and summarise latency')
    .argument('<service.method>', 'e.g. inference.LLM.embed')
    .argument('[request]', 'the request as JSON', 'null')
    .option('-n, --requests <n>', 'calls to make', positiveInt, 200)
    .option('-c, --concurrency <n>', 'calls in flight at once', positiveInt, 8)
    .action(async (target: string, request: string, options) => runBench(target, request, options));

  common(program.command('worker'))
    .description('serve an OpenAI-compatible engine (vLLM, SGLang, TGI, Ollama) as an inference.LLM worker')
    .addOption(new Option('--engine <kind>', "the engine's API").choices(['openai']).default('openai'))
    .requiredOption('--url <url>', "the engine's OpenAI API base, e.g. http://127.0.0.1:8000/v1")
    .option('--model <name...>', "models served (default: the engine's /v1/models)")
    .option('--name <name>', 'worker name in the registry')
    .option('--api-key <key>', 'bearer token for the engine')
    .option('--metrics-url <url>', 'the engine\'s Prometheus endpoint (default: /metrics at the URL\'s origin; "none" to report no load)')
    .option(
      '--metrics <names>',
      'metric names: auto, vllm, sglang, or field=name;… (fields: running, waiting, kvUsage, tokensPerSecond, generatedTokensTotal, cacheHitRate)',
      'auto',
    )
    .option('--metrics-interval <ms>', 'how often to read the metrics (and check the health endpoint)', positiveInt, 500)
    .option(
      '--health-url <url>',
      'the engine\'s health endpoint (default: /health at the URL\'s origin; "none": not checked); while it fails the worker says it is draining',
    )
    .option(
      '--stall-timeout <ms>',
      'silence after which an engine with requests in flight counts as stalled, and the worker says it is draining until it is heard again ("none": not watched)',
      stallTimeout,
      120_000,
    )
    .option('--slots <n>', 'sequences the engine runs at once (max_num_seqs); 4x this many calls are accepted', positiveInt, 256)
    .option(
      '--max-buffered-answer-bytes <n>',
      'engine answer bytes the worker holds at once while reading them, over all calls (default 268435456)',
      answerBytes,
    )
    .addOption(
      new Option(
        '--priority <style>',
        "send each call's priority to the engine: vllm (run it with --scheduling-policy priority), sglang (with --enable-priority-scheduling), or none",
      )
        .choices(['none', 'vllm', 'sglang'])
        .default('none'),
    )
    .option(
      '--kv-events <endpoint>',
      "follow the engine's KV-cache events (vLLM --kv-events-config) at this ZeroMQ endpoint, e.g. tcp://127.0.0.1:5557, and publish what its cache holds",
    )
    .option('--kv-events-topic <topic>', 'topic of the KV events', '')
    .option('--host <host>', 'address to serve shuttle calls on')
    .option('--port <port>', 'port to serve shuttle calls on (default: SHUTTLE_PORT, else 0: any free one)', port)
    .option('--admin-port <port>', 'serve /metrics and /health on 127.0.0.1 at this port (0: any free one)', port)
    .action(async (options) => runWorker(options));
  addAdmissionFlags(common(program.command('gateway')))
    .description(
      "serve the OpenAI API (/v1/chat/completions, /v1/completions, /v1/embeddings, /v1/models) over the registry's inference.LLM workers; requests wait for a free worker slot in an admission queue (--admission-*)",
    )
    .option('--port <port>', 'HTTP port (0: any free one)', port, 8080)
    .option('--host <host>', 'HTTP address', '127.0.0.1')
    .option('--loadbalance <name>', 'load balancer over the workers of a model', 'prefix-affinity')
    .option('--timeout <ms>', 'longest a generation may take', positiveInt, 600_000)
    .option(
      '--drain-timeout <ms>',
      'on SIGTERM, SIGINT or SIGHUP: how long open requests and streams may finish (new ones get 503 meanwhile) before they are ended',
      drainTimeout,
      10_000,
    )
    .option('--api-key <key>', 'require Authorization: Bearer <key>')
    .option(
      '--cors-origin <origin>',
      'let browser apps on this origin call the gateway (CORS), repeatable: https://app.example.com, or * for any page (off by default)',
      (origin: string, all: string[] = []) => [...all, origin],
    )
    .option('--admin-port <port>', 'serve /metrics, /health, /providers and the /dashboard on 127.0.0.1 at this port (0: any free one)', port)
    .action(async (options) => runGateway(options));

  try {
    await program.parseAsync([...argv], { from: 'user' });
    return 0;
  } catch (error) {
    if (error instanceof CommanderError) return error.exitCode === 0 ? 0 : 2;
    if (error instanceof UsageError) {
      writeErr(`shuttle: ${error.message}\n`);
      return 2;
    }
    if (error instanceof Cancelled) return 130;
    writeErr(`shuttle: ${error instanceof RpcError ? error.message : ((error as Error).message ?? String(error))}\n`);
    return 1;
  }
}

/**
 * The installed package's version, read from its package.json by the package's own name (the
 * exports map lists ./package.json), so the answer is right from dist/ and from a build of
 * the repository alike.
 */
function packageVersion(): string {
  return (createRequire(import.meta.url)('shuttle-rpc/package.json') as { version: string }).version;
}

function positiveInt(value: string): number {
  const parsed = Number(value);
  if (!Number.isInteger(parsed) || parsed < 1) throw new InvalidArgumentError(`expected a positive integer, got ${JSON.stringify(value)}`);
  return parsed;
}

function stallTimeout(value: string): number | false {
  if (value === 'none') return false;
  const parsed = Number(value);
  if (!Number.isInteger(parsed) || parsed < 100 || parsed > 86_400_000) {
    throw new InvalidArgumentError(`expected "none" or a whole number of ms from 100 to 86400000, got ${JSON.stringify(value)}`);
  }
  return parsed;
}

function drainTimeout(value: string): number {
  const parsed = Number(value);
  if (!/^\d+$/.test(value) || parsed > 86_400_000)
    throw new InvalidArgumentError(`expected a whole number of ms from 0 to 86400000, got ${JSON.stringify(value)}`);
  return parsed;
}

function answerBytes(value: string): number {
  const parsed = Number(value);
  if (!Number.isInteger(parsed) || parsed < 2 ** 20 || parsed > 64 * 2 ** 30)
    throw new InvalidArgumentError(`expected bytes from 1048576 (1 MiB) to 68719476736 (64 GiB), got ${JSON.stringify(value)}`);
  return parsed;
}

function port(value: string): number {
  const parsed = Number(value);
  if (!Number.isInteger(parsed) || parsed < 0 || parsed > 65535)
    throw new InvalidArgumentError(`expected a port from 0 to 65535, got ${JSON.stringify(value)}`);
  return parsed;
}

function collectMetadata(entry: string, collected: Record<string, string>): Record<string, string> {
  const at = entry.indexOf('=');
  if (at <= 0) throw new InvalidArgumentError(`expected key=value, got ${JSON.stringify(entry)}`);
  return { ...collected, [entry.slice(0, at)]: entry.slice(at + 1) };
}
