// Types of scripts/import-graph.mjs, for the test that runs it (test/unit/architecture/).

/** One strongly connected group of nodes and one shortest cycle through it (first node repeated last). */
export interface Cycle {
  readonly members: string[];
  readonly cycle: string[];
}

/** What {@link checkImportGraph} found; every list empty when the graph is clean. */
export interface ImportGraphCheck {
  readonly files: Cycle[];
  readonly folders: Cycle[];
  /** Folders missing from the layers. */
  readonly unknown: string[];
  /** Folder imports of the same row or a higher one: [from, to]. */
  readonly upward: [string, string][];
  /** "a -> b" folder edge -> one file edge behind it. */
  readonly via: Map<string, string>;
}

/** The folders of src/, bottom row first; a folder may import folders of lower rows only. */
export const LAYERS: readonly (readonly string[])[];
/** File (relative to root, `/`-separated) -> files it imports. */
export function readImportGraph(root: string): Map<string, Set<string>>;
/** The top-level folder of a file; `.` for a file directly in the root. */
export function folderOf(file: string): string;
export function foldToFolders(graph: Map<string, Set<string>>): { graph: Map<string, Set<string>>; via: Map<string, string> };
export function findCycles(graph: Map<string, Set<string>>): Cycle[];
export function checkLayers(folders: Map<string, Set<string>>, layers: readonly (readonly string[])[]): { unknown: string[]; upward: [string, string][] };
export function checkImportGraph(root: string, layers?: readonly (readonly string[])[]): ImportGraphCheck;
/** Human-readable report, empty when nothing is wrong. */
export function formatViolations(result: ImportGraphCheck): string;
