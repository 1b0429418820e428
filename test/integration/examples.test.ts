import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

/* The shipped examples, run as a user runs them (compiled, against dist/). */
const run = promisify(execFile);
const build = (file: string): string => fileURLToPath(new URL(`../../build/examples/${file}`, import.meta.url));

describe('examples', () => {
  it('the README main command (demo) runs the provider and consumer as two processes', async () => {
    const { stdout } = await run(process.execPath, [build('demo.js')], { timeout: 30_000 });
    expect(stdout.match(/provider \(pid \d+\) listening at shuttle:\/\/127\.0\.0\.1:\d+, registered in the default registry/g)).toHaveLength(2);
    // Found through the default (file) registry, and the calls fanned out over both workers.
    const workers = [...stdout.matchAll(/worker (\d+): (\d+) calls/g)].map((match) => Number(match[2]));
    expect(workers).toHaveLength(2);
    expect(workers.reduce((sum, n) => sum + n, 0)).toBe(2000);
    expect(Math.min(...workers)).toBeGreaterThan(0);
    expect(stdout).toMatch(/hello, shuttle \(from worker \d+\)/);
    expect(stdout).toMatch(/bad input is refused: \[invalid argument\] hello needs a non-empty name/);
    expect(stdout).toMatch(/deadline enforced: \[deadline exceeded\]/);
    expect(stdout).toMatch(/demo finished \(consumer exit code 0\)/);
  });

  it('the plugin example routes every call to the consumer zone through the plugin balancer', async () => {
    const { stdout } = await run(process.execPath, [build('plugin/run.js')], { timeout: 30_000 });
    expect(stdout).toMatch(/consumer plugins: zone-affinity-plugin/);
    const served = [...stdout.matchAll(/in (\S+) served (\d+) calls/g)].map((match) => [match[1], Number(match[2])] as const);
    expect(served.filter(([zone]) => zone === 'us-west-2b')).toEqual([['us-west-2b', 0]]);
    expect(served.filter(([zone]) => zone === 'us-east-1a').reduce((sum, [, n]) => sum + n, 0)).toBe(60);
  });
});
