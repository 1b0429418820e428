import { RpcCode, RpcError } from '../errors/errors.js';
import { describeAddress, describeLoad, describeMetadata, openRegistry, print, recordsOf, type CommonOptions } from './registry-view.js';
import { writeErr } from './terminal.js';

/** `shuttle ls`: every service, version and provider, with metadata and live load. */
export async function runLs(options: CommonOptions): Promise<void> {
  const { url, registry } = await openRegistry(options);
  try {
    if (registry.services === undefined) {
      throw new RpcError(
        RpcCode.UNIMPLEMENTED,
        `the ${registry.name} registry ${url} cannot list its services; name one: shuttle describe SERVICE --registry ${url}`,
      );
    }
    const services = await registry.services();
    const listed = await Promise.all(services.map(async (service) => ({ service, providers: await recordsOf(registry, service) })));
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
    print(options, { registry: url, services: listed }, ['service', 'version', 'group', 'provider', 'metadata', 'load'], rows);
    if (!options.json && rows.length === 0) writeErr(`no services in ${url}\n`);
  } finally {
    await registry.close();
  }
}
