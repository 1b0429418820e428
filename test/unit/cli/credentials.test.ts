import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { startEngineWorker } from '../../../src/engine/engine.js';
import { createLogger } from '../../../src/log/log.js';
import { runCliCaptured as run } from '../../helpers/cli-run.js';

/*
 * What an operator typed with a secret in it — a registry or engine URL with a password, an API
 * key — never comes back in an error line or a log line: those go to terminals, log stores and
 * tickets.
 */
describe('credentials in what the command and the library write', () => {
  it('hides the password of a registry URL the command refuses', async () => {
    const { code, written } = await run(['ls', '--registry', 'etdc://operator:s3cret@127.0.0.1:2379']);
    expect(code).toBe(1);
    expect(written).toContain('invalid --registry: "etdc://***@127.0.0.1:2379"');
    expect(written).not.toContain('s3cret');
  });

  it('hides a password long enough that the quoted value is cut before its @', async () => {
    const password = 'p'.repeat(90);
    const { code, written } = await run(['ls', '--registry', `etdc://operator:${password}@127.0.0.1:2379`]);
    expect(code).toBe(1);
    expect(written).toContain('invalid --registry: "etdc://***@127.0.0.1:2379"');
    expect(written).not.toContain('ppppp');
  });

  it("hides the password of an engine URL in the worker's failure to reach it", async () => {
    const { code, written } = await run(['worker', '--url', 'http://operator:s3cret@127.0.0.1:1/v1', '--registry', 'memory://credentials']);
    expect(code).toBe(1);
    expect(written).toContain('127.0.0.1:1/v1/models');
    expect(written).not.toContain('s3cret');
  });

  it('never echoes a refused gateway API key', async () => {
    const { code, written } = await run(['gateway', '--port', '0', '--registry', 'memory://credentials', '--api-key', 'sk-s3cret x']);
    expect(code).toBe(1);
    expect(written).toContain('invalid gateway apiKey: "(hidden, 11 characters)"');
    expect(written).not.toContain('s3cret');
  });

  it('refuses a metrics or health URL with credentials, which fetch could never send, before starting', async () => {
    for (const key of ['metricsUrl', 'healthUrl'] as const) {
      const starting = startEngineWorker({
        url: 'http://127.0.0.1:1/v1',
        models: ['m'],
        [key]: 'http://operator:s3cret@127.0.0.1:1/x',
        server: { registry: false, log: false },
        log: false,
      });
      await expect(starting.then(async (worker) => worker.close())).rejects.toThrow(
        `invalid engine worker ${key}: "http://***@127.0.0.1:1/x" (allowed: an http:// or https:// URL without user:password@`,
      );
    }
  });

  it('writes log lines with the credentials of every URL in them hidden, errors and causes included', () => {
    let lines = '';
    const stream = new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines += chunk.toString();
        done();
      },
    });
    const log = createLogger({ level: 'info', stream }, 'server');
    const error = new Error('cannot reach https://token123@engine.internal/v1', { cause: new Error('GET etcd://root:pa55@10.0.0.1:2379 failed') });
    log.warn({ err: error, url: 'http://user:hunter2@10.0.0.2:8000/metrics' }, 'engine http://user:hunter2@10.0.0.2:8000 is down');
    expect(lines).toContain('engine http://***@10.0.0.2:8000 is down');
    expect(lines).toContain('https://***@engine.internal/v1');
    expect(lines).toContain('etcd://***@10.0.0.1:2379');
    for (const secret of ['token123', 'pa55', 'hunter2']) expect(lines).not.toContain(secret);
    // Stack frames of scoped packages (`node_modules/@grpc/...`) are not URLs with credentials.
    log.warn({ frame: 'at file:///srv/app/node_modules/@grpc/grpc-js/build/src/call.js:32:19' }, 'frame');
    expect(lines).toContain('file:///srv/app/node_modules/@grpc/grpc-js');
  });
});
