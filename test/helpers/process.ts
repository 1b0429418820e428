import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

/** A child process started by a test, with the url it announced. */
export interface Child {
  readonly process: ChildProcess;
  readonly url: string;
  readonly host: string;
  readonly port: number;
  /** Everything the ready line said (`ready`, `pid`, and what the fixture adds). */
  readonly announced: Readonly<Record<string, unknown>>;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves when the process has exited. */
  stop(graceMs?: number): Promise<void>;
}

const started = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of started) child.kill('SIGKILL');
});

/**
 * Runs a compiled fixture (path relative to build/test/fixtures) and waits for the
 * `{"ready": url}` line it prints; fails after `timeoutMs`. `wrapper` prefixes the command
 * (e.g. `ip netns exec NS`); `args` follow the script.
 */
export async function startFixture(
  name: string,
  env: Record<string, string> = {},
  timeoutMs = 10_000,
  wrapper: readonly string[] = [],
  args: readonly string[] = [],
): Promise<Child> {
  const script = fileURLToPath(new URL(`../../build/test/fixtures/${name}.js`, import.meta.url));
  // A private in-process registry unless the test names a real one: fixtures must not
  // announce themselves in the host's default file registry.
  const childEnv = { ...process.env, SHUTTLE_REGISTRY: 'memory://fixture', ...env };
  const [command, ...commandArgs] = [...wrapper, process.execPath, script, ...args];
  const child = spawn(command!, commandArgs, { stdio: ['ignore', 'pipe', 'pipe'], env: childEnv });
  started.add(child);
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  let announced: Record<string, unknown> = {};
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name} did not announce readiness within ${timeoutMs} ms; stderr: ${stderr}`)), timeoutMs);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited with ${code} before it was ready; stderr: ${stderr}`));
    });
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const parsed = JSON.parse(line) as { ready?: string };
      if (parsed.ready !== undefined) {
        clearTimeout(timer);
        announced = parsed;
        resolve(parsed.ready);
      }
    });
  });
  const match = /^[a-z]+:\/\/(.+):(\d+)$/.exec(url)!;
  return {
    process: child,
    url,
    host: match[1]!,
    port: Number(match[2]),
    announced,
    stop(graceMs = 3000) {
      if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
      return new Promise<void>((resolve) => {
        const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
        child.once('exit', () => {
          clearTimeout(timer);
          started.delete(child);
          resolve();
        });
        child.kill('SIGTERM');
      });
    },
  };
}
