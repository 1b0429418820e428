#!/usr/bin/env node
import { runCli } from './cli.js';

/** The `shuttle` executable (package.json `bin`); see cli.ts. */
process.exitCode = await runCli(process.argv.slice(2));
