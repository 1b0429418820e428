import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Extensions } from './extensions.js';

/**
 * A third-party extension module. `setup` registers implementations into the context's
 * registries; it runs once per context, at start-up, in plugin order. A plugin may replace a
 * built-in (or an earlier plugin's) implementation only by registering it with
 * `{ override: true }`.
 */
export interface ShuttlePlugin {
  readonly name: string;
  setup(extensions: Extensions): void | Promise<void>;
}

/** A plugin that failed to load or set up; the message names the module. */
export class PluginError extends Error {
  override readonly name = 'PluginError';
}

/**
 * Loads the plugin modules `specifiers` (paths relative to `cwd`, absolute paths, or package
 * names resolved from `cwd`) and runs their `setup` against `extensions`, in order. A module
 * must export a ShuttlePlugin as its default export or as `plugin`. Any failure — module
 * missing, throwing while loading, wrong shape, setup throwing — rejects with a PluginError
 * naming the module, as does a plugin whose name an earlier module of the list already has.
 * Returns the loaded plugins' names.
 */
export async function loadPlugins(specifiers: readonly string[], cwd: string, extensions: Extensions): Promise<string[]> {
  const loaded: string[] = [];
  const seen = new Set<string>();
  /** Plugin name -> the module that brought it: a name says which plugin failed, so it names one module. */
  const names = new Map<string, string>();
  for (const specifier of specifiers) {
    if (typeof specifier !== 'string' || specifier.length === 0) {
      throw new PluginError(`shuttle-rpc: invalid plugin ${JSON.stringify(specifier)} (allowed: a module path or package name)`);
    }
    const file = await resolvePlugin(specifier, cwd);
    if (seen.has(file)) continue;
    seen.add(file);
    let module: Record<string, unknown>;
    try {
      module = (await import(pathToFileURL(file).href)) as Record<string, unknown>;
    } catch (error) {
      throw new PluginError(`shuttle-rpc: plugin ${specifier} (${file}) threw while loading: ${(error as Error).message}`, { cause: error });
    }
    const plugin = (module['default'] ?? module['plugin']) as Partial<ShuttlePlugin> | undefined;
    if (plugin === null || typeof plugin !== 'object' || typeof plugin.name !== 'string' || plugin.name.trim() === '' || typeof plugin.setup !== 'function') {
      throw new PluginError(
        `shuttle-rpc: plugin ${specifier} (${file}) must export a ShuttlePlugin { name: string, setup(extensions) } as default or as "plugin"`,
      );
    }
    const taken = names.get(plugin.name);
    if (taken !== undefined) {
      throw new PluginError(
        `shuttle-rpc: plugin ${specifier} (${file}) is named ${JSON.stringify(plugin.name)}, the name of plugin ${taken} already loaded; plugin names must be unique`,
      );
    }
    names.set(plugin.name, specifier);
    try {
      await plugin.setup(extensions);
    } catch (error) {
      throw new PluginError(`shuttle-rpc: plugin ${plugin.name} (${specifier}) failed in setup: ${(error as Error).message}`, { cause: error });
    }
    loaded.push(plugin.name);
  }
  return loaded;
}

/** The `shuttle.plugins` list of the package.json in `cwd`, or [] when there is none. */
export async function packageJsonPlugins(cwd: string): Promise<string[]> {
  const file = path.join(cwd, 'package.json');
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    return [];
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new PluginError(`shuttle-rpc: cannot read ${file}: ${(error as Error).message}`);
  }
  const plugins = (parsed as { shuttle?: { plugins?: unknown } } | null)?.shuttle?.plugins;
  if (plugins === undefined) return [];
  if (!Array.isArray(plugins) || !plugins.every((entry) => typeof entry === 'string')) {
    throw new PluginError(`shuttle-rpc: invalid shuttle.plugins in ${file}: ${JSON.stringify(plugins)} (allowed: an array of module paths or package names)`);
  }
  return plugins as string[];
}

async function resolvePlugin(specifier: string, cwd: string): Promise<string> {
  const isPath = specifier.startsWith('.') || path.isAbsolute(specifier);
  if (isPath) {
    const file = path.resolve(cwd, specifier);
    try {
      await readFile(file);
    } catch {
      throw new PluginError(`shuttle-rpc: plugin ${specifier} not found (looked for ${file})`);
    }
    return file;
  }
  try {
    return createRequire(path.join(cwd, 'package.json')).resolve(specifier);
  } catch {
    const file = await resolveEsmOnly(specifier, cwd);
    if (file !== undefined) return file;
    throw new PluginError(`shuttle-rpc: plugin package ${specifier} not found from ${cwd} (is it installed?)`);
  }
}

/**
 * Finds an ESM-only package (whose `exports` has no `require` condition, so createRequire
 * cannot resolve it) by walking up node_modules folders and reading its entry point.
 */
async function resolveEsmOnly(name: string, cwd: string): Promise<string | undefined> {
  for (let dir = path.resolve(cwd); ; dir = path.dirname(dir)) {
    const root = path.join(dir, 'node_modules', name);
    try {
      const manifest = JSON.parse(await readFile(path.join(root, 'package.json'), 'utf8')) as {
        exports?: unknown;
        main?: string;
      };
      const entry = exportsEntry(manifest.exports) ?? manifest.main ?? 'index.js';
      return path.join(root, entry);
    } catch {
      if (path.dirname(dir) === dir) return undefined;
    }
  }
}

function exportsEntry(exports: unknown): string | undefined {
  if (typeof exports === 'string') return exports;
  if (exports === null || typeof exports !== 'object') return undefined;
  const root = (exports as Record<string, unknown>)['.'] ?? exports;
  if (typeof root === 'string') return root;
  if (root === null || typeof root !== 'object') return undefined;
  for (const condition of ['import', 'node', 'default']) {
    const value = exportsEntry((root as Record<string, unknown>)[condition]);
    if (value !== undefined) return value;
  }
  return undefined;
}
