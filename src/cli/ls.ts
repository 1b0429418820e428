import { RpcCode, RpcError } from '../errors/errors.js';
import type { Registry, ServiceInstance } from '../registry/registry.js';
import { describeAddress, describeLoad, describeMetadata, openRegistry, print, recordsOf, type CommonOptions } from './registry-view.js';
import { writeErr } from './terminal.js';
import { hideCredentials } from '../common/credentials.js';

/** `shuttle ls`: every service, version and provider, with metadata and live load. */
export async function runLs(options: CommonOptions): Promise<void> {
  const { url, registry } = await openRegistry(options);
  try {
    const { listed, truncated } = await listAll(registry, url);
    const rows = listed.flatMap(({ service, providers }) =>
      providers.map((provider) => [
        service,
        provider.version || '-',
        provider.group || '-',
        describeAddress(provider),
        describeMetadata(provider.metadata),
        describeLoad(provider),
      ]),
    );
    print(
      options,
      // Standard output may go to a log: the URL's user and password are not repeated there.
      { registry: hideCredentials(url), services: listed, ...(truncated ? { truncated: true } : {}) },
      ['service', 'version', 'group', 'provider', 'metadata', 'load'],
      rows,
    );
    if (truncated) writeErr(`${url} holds more than ${MAX_RECORDS} records; only the first ${MAX_RECORDS} in key order are shown\n`);
    if (!options.json && rows.length === 0) writeErr(`no services in ${url}\n`);
  } finally {
    await registry.close();
  }
}

type Listed = Array<{ service: string; providers: readonly ServiceInstance[] }>;

/**
 * Every service and its records: in one read when the registry can (`records`), else
 * service by service, a few at a time. On etcd, a subscription per service is a listing and a
 * watch: 10,000 services opened all at once timed out, and one after the other took minutes.
 */
async function listAll(registry: Registry, url: string): Promise<{ listed: Listed; truncated: boolean }> {
  if (registry.records !== undefined) {
    const { records, truncated } = await registry.records(MAX_RECORDS);
    const byService = new Map<string, ServiceInstance[]>();
    for (const record of records) {
      const providers = byService.get(record.service);
      if (providers === undefined) byService.set(record.service, [record]);
      else providers.push(record);
    }
    const listed = [...byService.keys()].sort().map((service) => ({ service, providers: byService.get(service) ?? [] }));
    return { listed, truncated };
  }
  if (registry.services === undefined) {
    throw new RpcError(
      RpcCode.UNIMPLEMENTED,
      `the ${registry.name} registry ${url} cannot list its services; name one: shuttle describe SERVICE --registry ${url}`,
    );
  }
  const services = await registry.services();
  const listed = await mapBounded(services, READS_AT_ONCE, async (service) => ({ service, providers: await recordsOf(registry, service) }));
  return { listed, truncated: false };
}

/** Records `shuttle ls` shows at most. */
const MAX_RECORDS = 10_000;

/** Services read at once when the registry is read service by service. */
const READS_AT_ONCE = 8;

/** `fn` over `items`, at most `limit` at a time, results in the order of `items`. */
async function mapBounded<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const index = next++;
      results[index] = await fn(items[index] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}
