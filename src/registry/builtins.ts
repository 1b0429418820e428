import type { BuiltinExtension } from '../common/extension-registry.js';
import { createDirectRegistry, TYPE_NAME as DIRECT } from './direct.js';
import { createEtcdRegistry, TYPE_NAME as ETCD } from './etcd/etcd.js';
import { createFileRegistry, TYPE_NAME as FILE } from './file/file.js';
import { createMemoryRegistry, TYPE_NAME as MEMORY } from './memory.js';
import type { Registry } from './registry.js';

/** The built-in registries, each also the URL scheme that selects it (`etcd://…`). */
export const BUILTIN_REGISTRIES: readonly BuiltinExtension<Registry>[] = [
  { name: MEMORY, factory: createMemoryRegistry },
  { name: DIRECT, factory: createDirectRegistry },
  { name: FILE, factory: createFileRegistry },
  { name: ETCD, factory: createEtcdRegistry },
];
