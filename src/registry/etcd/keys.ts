/*
 * The etcd key layout (docs/REGISTRY.md):
 *
 *   {prefix}/services/{service}/{version}/{group}/{host:port}  -> ServiceInstance JSON, on the provider's lease
 *   {prefix}/load/{host:port}                                  -> LoadSnapshot JSON, on the same lease
 *
 * Segments are URI-encoded so a "/" in a name cannot change the structure; an empty version
 * or group is written "_" (and a literal "_" as "%5F"), so every key has the same depth.
 */

function segment(value: string): string {
  return value === '' ? '_' : encodeURIComponent(value).replaceAll('_', '%5F');
}

/** The key of one service record. */
export function serviceKey(prefix: string, record: { service: string; version: string; group: string; host: string; port: number }): string {
  return `${prefix}/services/${segment(record.service)}/${segment(record.version)}/${segment(record.group)}/${segment(`${record.host}:${record.port}`)}`;
}

/** The prefix under which every record of `service` lives (all versions and groups). */
export function servicePrefix(prefix: string, service: string): string {
  return `${prefix}/services/${segment(service)}/`;
}

/** The key of a provider's load snapshot. */
export function loadKey(prefix: string, address: string): string {
  return `${prefix}/load/${segment(address)}`;
}

/** The prefix of every load snapshot. */
export function loadPrefix(prefix: string): string {
  return `${prefix}/load/`;
}
