import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createClient, createServer } from 'shuttle-rpc';
import { numberOption } from '../common/common.js';
import { line, sample } from './sample.js';
import { SoakService } from './service.js';
import type { SoakApi } from './service.js';

/*
 * Servers created and closed over and over in one process (file registry, a fresh port each
 * time), each called a few times by a client that lives for the whole run, for --seconds (60):
 * after each close nothing of the server should stay (timers, sockets, registry files and
 * watches, listeners on process), and the client should let go of every departed address.
 */
const seconds = numberOption('seconds', 60);
const every = numberOption('sample-ms', 5000);
const dir = mkdtempSync(path.join(tmpdir(), 'shuttle-soak-servers-'));
const registry = `file://${dir}`;
const listeners = (): number => process.eventNames().reduce((n, name) => n + process.listenerCount(name), 0);
const client = await createClient({ registry, config: false, log: false, timeoutMs: 2000 });
const api = client.proxy<SoakApi>('soak.Churn', { version: '1.0.0', waitForReady: true });
const end = performance.now() + seconds * 1000;
let next = 0;
let servers = 0;
let failed = 0;
try {
  while (performance.now() < end) {
    const server = await createServer({ registry, host: '127.0.0.1', port: 0, services: [new SoakService()], log: false });
    for (let i = 0; i < 3; i++) {
      try {
        await api.echo(i);
      } catch {
        failed++;
      }
    }
    await server.close();
    servers++;
    if (performance.now() >= next) {
      next = performance.now() + every;
      console.log(line('server-churn', sample({ servers, failed, processListeners: listeners(), providersListed: client.providers().length })));
    }
  }
} finally {
  await client.close();
  rmSync(dir, { recursive: true, force: true });
}
console.log(line('server-churn', sample({ servers, failed, processListeners: listeners() })));
