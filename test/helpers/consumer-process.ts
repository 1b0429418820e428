import { startFixture, type Child } from './process.js';

/** What a steady consumer process reports when stopped. */
export interface SteadyReport {
  readonly calls: number;
  readonly failures: number;
  readonly errors: readonly string[];
  readonly pids: readonly number[];
  /** Calls answered in a row at the end. */
  readonly okStreak: number;
}

/** A consumer process calling test.Echo.pid() in a loop (test/fixtures/steady-consumer.ts). */
export interface SteadyConsumer {
  readonly child: Child;
  /** Whether it is still running (an uncaught error ends it). */
  readonly alive: boolean;
  /** Standard error so far, for failure messages. */
  readonly stderr: string;
  /** SIGTERM; resolves with its report, or rejects when it died before (saying how). */
  finish(): Promise<SteadyReport>;
}

/** Starts a steady consumer on `registry`; resolves once its first call was answered. */
export async function startSteadyConsumer(registry: string, env: Record<string, string> = {}): Promise<SteadyConsumer> {
  const child = await startFixture('steady-consumer', { SHUTTLE_REGISTRY: registry, ...env }, 20_000);
  let stdout = '';
  let stderr = '';
  child.process.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.process.stderr!.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-8000)));
  const exited = new Promise<void>((resolve) => child.process.once('exit', () => resolve()));
  const alive = (): boolean => child.process.exitCode === null && child.process.signalCode === null;
  return {
    child,
    get alive() {
      return alive();
    },
    get stderr() {
      return stderr;
    },
    async finish() {
      if (!alive()) throw new Error(`the consumer process died (exit ${child.process.exitCode}, signal ${child.process.signalCode}): ${stderr}`);
      await child.stop(10_000);
      await exited;
      const last = stdout.trim().split('\n').at(-1) ?? '';
      try {
        return JSON.parse(last) as SteadyReport;
      } catch {
        throw new Error(`the consumer process printed no report (exit ${child.process.exitCode}): ${stderr}`);
      }
    },
  };
}
