import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { RpcError } from '../errors/errors.js';
import { runBench } from './bench.js';
import { runCall } from './call.js';
import { runDescribe } from './describe.js';
import { Cancelled, UsageError } from './errors.js';
import { runLs } from './ls.js';
import type { CommonOptions } from './registry-view.js';

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
    .description('Look at a shuttle-rpc registry and call its services by hand.')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  const common = (command: Command): Command =>
    command
      .option('--registry <url>', 'registry URL: etcd://host:port, file://dir, shuttle://host:port (default: SHUTTLE_REGISTRY, else this host\'s file registry)')
      .option('--json', 'print JSON for scripts instead of tables', false);
  const calling = (command: Command): Command =>
    common(command)
      .option('--timeout <ms>', 'deadline of each call in ms', positiveInt, 30_000)
      .option('--version <version>', 'service version (default: any)')
      .option('--group <group>', 'service group (default: the default group)')
      .addOption(new Option('--transport <name>', 'transport to call over').choices(['tcp', 'grpc']).default('tcp'))
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
    .argument('<service.method>', 'e.g. inference.LLM.generate')
    .argument('[request]', 'the request as JSON, e.g. \'{"prompt":"hi"}\'', 'null')
    .action(async (target: string, request: string, options) => runCall(target, request, options));
  calling(program.command('bench'))
    .description('run a short load against a method and summarise latency')
    .argument('<service.method>', 'e.g. inference.LLM.embed')
    .argument('[request]', 'the request as JSON', 'null')
    .option('-n, --requests <n>', 'calls to make', positiveInt, 200)
    .option('-c, --concurrency <n>', 'calls in flight at once', positiveInt, 8)
    .action(async (target: string, request: string, options) => runBench(target, request, options));

  try {
    await program.parseAsync([...argv], { from: 'user' });
    return 0;
  } catch (error) {
    if (error instanceof CommanderError) return error.exitCode === 0 ? 0 : 2;
    if (error instanceof UsageError) {
      process.stderr.write(`shuttle: ${error.message}\n`);
      return 2;
    }
    if (error instanceof Cancelled) return 130;
    process.stderr.write(`shuttle: ${error instanceof RpcError ? error.message : (error as Error).message ?? String(error)}\n`);
    return 1;
  }
}

function positiveInt(value: string): number {
  const parsed = Number(value);
  if (!Number.isInteger(parsed) || parsed < 1) throw new InvalidArgumentError(`expected a positive integer, got ${JSON.stringify(value)}`);
  return parsed;
}

function collectMetadata(entry: string, collected: Record<string, string>): Record<string, string> {
  const at = entry.indexOf('=');
  if (at <= 0) throw new InvalidArgumentError(`expected key=value, got ${JSON.stringify(entry)}`);
  return { ...collected, [entry.slice(0, at)]: entry.slice(at + 1) };
}
