// Types of scripts/check-package.mjs, for the tests that run it.

/** What {@link checkPackage} reads: every fact about the package comes from here. */
export interface PackageFacts {
  /** The package.json. */
  readonly pkg: Record<string, unknown>;
  /** The shipped files, `/`-separated and relative to the package root. */
  readonly files: readonly string[];
  /** The text of a shipped file. */
  read(file: string): string;
  /** Whether the installed package `name` brings its own types. */
  hasTypes(name: string): boolean;
  /** The source files (src/a/b.ts) the compiled ones come from; unchecked when absent. */
  readonly sources?: readonly string[];
  readonly sourceDir?: string;
  readonly outDir?: string;
}

/** The files `npm pack` would ship from the package at `root`. */
export function packedFiles(root: string): string[];
/** One line per problem a fresh project would meet; empty when the package is fine. */
export function checkPackage(facts: PackageFacts): string[];
/** Whether a package installed under `root`/node_modules brings its own types. */
export function installedTypes(root: string): (name: string) => boolean;
/** Every check, on the package at `root` (built first). */
export function checkPackageAt(root: string): string[];
