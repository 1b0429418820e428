#!/usr/bin/env node
import { runCli } from './cli.js';

/** The `shuttle` executable (package.json `bin`); see cli.ts. */
// A reader that stops early (`shuttle ls | head -1`) closes the pipe: that ends the output, not
// with a stack trace.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw error;
  });
}
process.exitCode = await runCli(process.argv.slice(2));
