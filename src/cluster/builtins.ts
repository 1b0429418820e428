import type { BuiltinExtension } from '../common/extension-registry.js';
import { createBroadcastCluster, TYPE_NAME as BROADCAST } from './broadcast.js';
import type { ClusterStrategy } from './cluster.js';
import { createFailbackCluster, TYPE_NAME as FAILBACK } from './failback.js';
import { createFailfastCluster, TYPE_NAME as FAILFAST } from './failfast.js';
import { createFailoverCluster, TYPE_NAME as FAILOVER } from './failover.js';
import { createFailsafeCluster, TYPE_NAME as FAILSAFE } from './failsafe.js';
import { createForkingCluster, TYPE_NAME as FORKING } from './forking.js';

/** The built-in cluster strategies, as Dubbo names them. */
export const BUILTIN_CLUSTERS: readonly BuiltinExtension<ClusterStrategy>[] = [
  { name: FAILOVER, factory: createFailoverCluster },
  { name: FAILFAST, factory: createFailfastCluster },
  { name: FAILSAFE, factory: createFailsafeCluster },
  { name: FAILBACK, factory: createFailbackCluster },
  { name: FORKING, factory: createForkingCluster },
  { name: BROADCAST, factory: createBroadcastCluster },
];
