import { parseArgs } from 'node:util';
import { createContext } from 'shuttle-rpc';

/** The demo's options, checked. */
export interface DemoOptions {
  readonly registry: string | undefined;
  readonly loadbalance: string;
  readonly engine: 'sim' | 'openai';
  readonly urls: readonly string[];
  /** Also run the workload with round-robin, on a fresh fleet, and show both side by side. */
  readonly compare: boolean;
  /** Port of the consumer's admin server (dashboard); 0 for any free one. */
  readonly adminPort: number;
  readonly help: boolean;
}

/** The usage text of `demo.js --help`. */
export const USAGE = `Usage: node build/examples/demo.js [options]   (npm run demo -- [options])

Fans a multi-turn chat workload out over three simulated GPU workers (H100, A10, L4) and
prints what the routing did.

Options:
  --loadbalance <name>   balancer to route with (default prefix-affinity); one of
                         {LOADBALANCERS}
  --compare              run the same workload again with round-robin on a fresh fleet
                         and show both side by side
  --registry <url>       registry: etcd://host:port, file://dir (default: this host's
                         embedded file registry)
  --engine <sim|openai>  simulated GPU engines (default), or real OpenAI-compatible ones
  --url <url>            with --engine openai: an engine's API base, e.g.
                         http://127.0.0.1:8000/v1 (once per engine)
  --admin-port <port>    port of the live dashboard (default: any free port)
  -h, --help             show this text
`;

/** A mistake in the options: the demo prints it with the usage and exits 2, before starting anything. */
export class DemoUsageError extends Error {}

/**
 * Parses and checks `argv`: unknown options, a balancer that does not exist, an engine kind
 * or a port out of range fail here, naming the option and what is allowed.
 */
export async function parseDemoOptions(argv: readonly string[]): Promise<DemoOptions> {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(argv);
  } catch (error) {
    // node:util's messages name the option ("Unknown option '--nope'"); its stack is noise here.
    throw new DemoUsageError((error as Error).message.replace(/\. To specify a positional argument.*$/s, ''));
  }
  const { values } = parsed;
  const balancers = await loadBalancerNames();
  const loadbalance = values.loadbalance;
  if (!balancers.includes(loadbalance))
    throw new DemoUsageError(`--loadbalance ${JSON.stringify(loadbalance)} is not a balancer; use one of: ${balancers.join(', ')}`);
  if (values.engine !== 'sim' && values.engine !== 'openai') throw new DemoUsageError(`--engine must be sim or openai, got ${JSON.stringify(values.engine)}`);
  const urls = values.url ?? [];
  if (values.engine === 'openai' && urls.length === 0) throw new DemoUsageError('--engine openai needs --url http://host:port/v1 (once per engine)');
  if (values.engine === 'sim' && urls.length > 0) throw new DemoUsageError('--url is for --engine openai (the simulated engines need none)');
  for (const url of urls) {
    if (!/^https?:\/\/[^/\s]+/.test(url)) throw new DemoUsageError(`--url must be an http(s) URL such as http://127.0.0.1:8000/v1, got ${JSON.stringify(url)}`);
  }
  const adminPort = values['admin-port'] === undefined ? 0 : Number(values['admin-port']);
  if (!Number.isInteger(adminPort) || adminPort < 0 || adminPort > 65535)
    throw new DemoUsageError(`--admin-port must be a port from 0 to 65535, got ${JSON.stringify(values['admin-port'])}`);
  return { registry: values.registry, loadbalance, engine: values.engine, urls, compare: values.compare, adminPort, help: values.help };
}

/** The usage text with the balancers this build knows. */
export async function usage(): Promise<string> {
  return USAGE.replace('{LOADBALANCERS}', (await loadBalancerNames()).join(', '));
}

function parse(argv: readonly string[]) {
  return parseArgs({
    args: [...argv],
    strict: true,
    allowPositionals: false,
    options: {
      registry: { type: 'string' },
      loadbalance: { type: 'string', default: 'prefix-affinity' },
      engine: { type: 'string', default: 'sim' },
      url: { type: 'string', multiple: true },
      compare: { type: 'boolean', default: false },
      'admin-port': { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
}

async function loadBalancerNames(): Promise<string[]> {
  return (await createContext()).extensions.loadbalance.names().sort();
}
