import { Etcd3 } from 'etcd3';
import { afterAll, afterEach, beforeAll } from 'vitest';
import { startEtcd, type EtcdServer } from './etcd.js';

/** One etcd server for a test file, a client of its own for the test, and per-test cleanups. */
export interface EtcdSuite {
  readonly etcd: EtcdServer;
  /** The test's own etcd3 client (to read, write and compact behind the registry's back). */
  readonly admin: Etcd3;
  /** Run in reverse order after each test, before etcd is restarted if stopped and /shuttle/ emptied. */
  readonly cleanups: Array<() => Promise<unknown> | unknown>;
}

/**
 * Registers the hooks of a test file that runs against one real etcd (test/helpers/etcd.ts):
 * started before the first test, brought back up and emptied under `/shuttle/` after each,
 * removed after the last. `etcd` and `admin` may be read once the file's tests run.
 */
export function etcdSuite(): EtcdSuite {
  let etcd: EtcdServer | undefined;
  let admin: Etcd3 | undefined;
  const cleanups: EtcdSuite['cleanups'] = [];
  beforeAll(async () => {
    etcd = await startEtcd();
    admin = new Etcd3({ hosts: etcd.endpoint });
  });
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
    if (etcd !== undefined && !etcd.running) await etcd.start();
    await admin?.delete().prefix('/shuttle/');
  });
  afterAll(async () => {
    // Undefined when beforeAll failed (say etcd is missing): report that, not a TypeError here.
    admin?.close();
    await etcd?.remove();
  });
  return {
    get etcd() {
      if (etcd === undefined) throw new Error('etcd is not running (did beforeAll fail?)');
      return etcd;
    },
    get admin() {
      if (admin === undefined) throw new Error('etcd is not running (did beforeAll fail?)');
      return admin;
    },
    cleanups,
  };
}
