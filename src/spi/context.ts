import { cloneExtensions, defaultExtensions, type Extensions } from './extensions.js';
import { loadPlugins, packageJsonPlugins } from './plugin.js';

/**
 * The application context: the extension registries one client or server (or several that
 * choose to share it) resolve names against. Nothing about extensions lives in module state.
 */
export interface ShuttleContext {
  readonly extensions: Extensions;
  /** Names of the plugins set up in this context, in load order. */
  readonly plugins: readonly string[];
}

/** Options of {@link createContext}. */
export interface ContextOptions {
  /** Plugin modules to load after those of package.json (paths or package names). */
  plugins?: readonly string[];
  /** Where relative plugin paths and package.json are looked up; the process's cwd by default. */
  cwd?: string;
  /** Read `shuttle.plugins` from `cwd`'s package.json; true by default. */
  packageJson?: boolean;
  /** Start from these registries instead of the built-ins (they are copied, not changed). */
  base?: Extensions;
}

/**
 * Builds a context: the built-in extensions, then the plugins of package.json's
 * `shuttle.plugins`, then `plugins`, each set up in order. Later plugins may override earlier
 * ones (and built-ins) only explicitly. Rejects with a PluginError naming a bad plugin.
 */
export async function createContext(options: ContextOptions = {}): Promise<ShuttleContext> {
  const cwd = options.cwd ?? process.cwd();
  const extensions = options.base === undefined ? defaultExtensions() : cloneExtensions(options.base);
  const specifiers = [...(options.packageJson === false ? [] : await packageJsonPlugins(cwd)), ...(options.plugins ?? [])];
  const plugins = await loadPlugins(specifiers, cwd, extensions);
  return { extensions, plugins };
}

/**
 * The context a client or server uses: `given` (extended with `plugins` when there are any),
 * or a new one with the plugins of package.json and of the configuration.
 */
export async function resolveContext(given: ShuttleContext | undefined, plugins: readonly string[] | undefined, cwd?: string): Promise<ShuttleContext> {
  if (plugins !== undefined && (!Array.isArray(plugins) || !plugins.every((entry) => typeof entry === 'string'))) {
    throw new TypeError(`shuttle-rpc: invalid plugins: ${JSON.stringify(plugins)} (allowed: an array of module paths or package names)`);
  }
  if (given !== undefined) {
    if (plugins === undefined || plugins.length === 0) return given;
    const derived = await createContext({ base: given.extensions, plugins, packageJson: false, cwd });
    return { extensions: derived.extensions, plugins: [...given.plugins, ...derived.plugins] };
  }
  return createContext({ plugins, cwd });
}
