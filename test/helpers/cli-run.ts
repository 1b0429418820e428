import { runCli } from '../../src/cli/cli.js';

/** Runs the `shuttle` command in process with its stdout and stderr captured: its exit code and what it wrote. */
export async function runCliCaptured(args: string[]): Promise<{ code: number; written: string }> {
  const written: string[] = [];
  const write = process.stderr.write.bind(process.stderr);
  const writeOut = process.stdout.write.bind(process.stdout);
  process.stderr.write = ((chunk: string) => written.push(String(chunk)) > 0) as typeof process.stderr.write;
  process.stdout.write = ((chunk: string) => written.push(String(chunk)) > 0) as typeof process.stdout.write;
  try {
    return { code: await runCli(args), written: written.join('') };
  } finally {
    process.stderr.write = write;
    process.stdout.write = writeOut;
  }
}
