import { RpcCode, RpcError } from '../errors/errors.js';
import type { MethodDescriptor } from '../registry/registry.js';
import { describeAddress, describeLoad, openRegistry, print, recordsOf, type CommonOptions } from './registry-view.js';
import { writeOut } from './terminal.js';

/** `shuttle describe SERVICE`: its methods (kind, idempotent) and its providers. */
export async function runDescribe(service: string, options: CommonOptions): Promise<void> {
  const { url, registry } = await openRegistry(options);
  try {
    const providers = await recordsOf(registry, service);
    if (providers.length === 0) throw new RpcError(RpcCode.NOT_FOUND, `no provider of ${service} in ${url}${await suggestion(registry, service)}`);
    const methods = new Map<string, MethodDescriptor & { versions: Set<string> }>();
    for (const provider of providers) {
      for (const method of provider.methods) {
        const known = methods.get(method.name) ?? { ...method, versions: new Set<string>() };
        known.versions.add(provider.version || '-');
        methods.set(method.name, known);
      }
    }
    const list = [...methods.values()].sort((a, b) => a.name.localeCompare(b.name));
    print(
      options,
      { service, methods: list.map(({ versions, ...method }) => ({ ...method, versions: [...versions] })), providers },
      ['method', 'kind', 'idempotent', 'versions'],
      list.map((method) => [method.name, method.stream ? 'server stream' : 'unary', method.idempotent ? 'yes' : 'no', [...method.versions].join(', ')]),
    );
    if (!options.json) {
      writeOut(`providers of ${service}:\n`);
      for (const provider of providers) writeOut(`  ${describeAddress(provider)}  v${provider.version || '-'}  ${describeLoad(provider)}\n`);
    }
  } finally {
    await registry.close();
  }
}

/** ` (did you mean …?)` from the registry's service names, when it can list them. */
export async function suggestion(registry: { services?(): Promise<string[]> }, service: string): Promise<string> {
  const names = (await registry.services?.().catch(() => [])) ?? [];
  if (names.length === 0) return '';
  const lower = service.toLowerCase();
  const close = names.filter((name) => name.toLowerCase().includes(lower.split('.').pop() ?? lower) || lower.includes(name.toLowerCase()));
  return ` (registered services: ${(close.length > 0 ? close : names).slice(0, 10).join(', ')})`;
}
