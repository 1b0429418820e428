import type { BuiltinExtension } from '../common/extension-registry.js';
import { createConsistentHashBalancer, TYPE_NAME as CONSISTENT_HASH } from './consistent-hash.js';
import { createLeastActiveBalancer, TYPE_NAME as LEAST_ACTIVE } from './least-active.js';
import type { LoadBalancer } from './loadbalance.js';
import { createP2cBalancer, TYPE_NAME as P2C } from './p2c.js';
import { createPrefixAffinityBalancer, TYPE_NAME as PREFIX_AFFINITY } from './prefix-affinity.js';
import { createRandomBalancer, TYPE_NAME as RANDOM } from './random.js';
import { createRoundRobinBalancer, TYPE_NAME as ROUND_ROBIN } from './round-robin.js';
import { createShortestResponseBalancer, TYPE_NAME as SHORTEST_RESPONSE } from './shortest-response.js';
import { createSloBalancer, TYPE_NAME as SLO } from './slo.js';

/** The built-in load balancers (docs/LOADBALANCE.md describes each). */
export const BUILTIN_BALANCERS: readonly BuiltinExtension<LoadBalancer>[] = [
  { name: RANDOM, factory: createRandomBalancer },
  { name: ROUND_ROBIN, factory: createRoundRobinBalancer },
  { name: LEAST_ACTIVE, factory: createLeastActiveBalancer },
  { name: SHORTEST_RESPONSE, factory: createShortestResponseBalancer },
  { name: P2C, factory: createP2cBalancer },
  { name: CONSISTENT_HASH, factory: createConsistentHashBalancer },
  { name: PREFIX_AFFINITY, factory: createPrefixAffinityBalancer },
  { name: SLO, factory: createSloBalancer },
];
