import { execFileSync } from 'node:child_process';

/**
 * Network namespaces for multi-host tests: a bridge in the root namespace and one namespace
 * per "host", each joined to the bridge by a veth pair and given its own address in a /24 of
 * 10.213.0.0/16 picked per run. Only these namespaces' addresses are ever dialled. Needs root
 * and iproute2.
 */
export interface TestHosts {
  /** The bridge's address in the root namespace (where etcd listens). */
  readonly gateway: string;
  /** Namespace name -> its address. */
  readonly hosts: ReadonlyMap<string, string>;
  /** `ip netns exec NAME` as a command prefix. */
  exec(name: string): string[];
  remove(): void;
}

function ip(...args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

/** Why namespaces cannot be made here, or undefined when they can. */
export function netnsUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'not running as root';
  try {
    execFileSync('ip', ['netns', 'list'], { stdio: 'ignore' });
  } catch {
    return 'iproute2 `ip netns` is not available';
  }
  return undefined;
}

export function createTestHosts(names: readonly string[]): TestHosts {
  const tag = `${process.pid % 10_000}${Math.floor(Math.random() * 100)}`;
  const subnet = 1 + Math.floor(Math.random() * 250);
  const bridge = `shbr${tag}`;
  const gateway = `10.213.${subnet}.1`;
  const hosts = new Map<string, string>();
  const created: string[] = [];
  const remove = (): void => {
    for (const ns of created) {
      try {
        ip('netns', 'del', ns);
      } catch {
        // already gone
      }
    }
    try {
      ip('link', 'del', bridge);
    } catch {
      // already gone
    }
  };
  try {
    ip('link', 'add', bridge, 'type', 'bridge');
    ip('addr', 'add', `${gateway}/24`, 'dev', bridge);
    ip('link', 'set', bridge, 'up');
    names.forEach((name, index) => {
      const ns = `sh${tag}${name}`;
      const outside = `sv${tag}${index}a`;
      const inside = `sv${tag}${index}b`;
      const address = `10.213.${subnet}.${10 + index}`;
      ip('netns', 'add', ns);
      created.push(ns);
      ip('link', 'add', outside, 'type', 'veth', 'peer', 'name', inside);
      ip('link', 'set', outside, 'master', bridge);
      ip('link', 'set', outside, 'up');
      ip('link', 'set', inside, 'netns', ns);
      ip('netns', 'exec', ns, 'ip', 'addr', 'add', `${address}/24`, 'dev', inside);
      ip('netns', 'exec', ns, 'ip', 'link', 'set', inside, 'up');
      ip('netns', 'exec', ns, 'ip', 'link', 'set', 'lo', 'up');
      hosts.set(ns, address);
    });
  } catch (error) {
    remove();
    throw error;
  }
  return { gateway, hosts, exec: (name) => ['ip', 'netns', 'exec', name], remove };
}
