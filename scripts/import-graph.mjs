#!/usr/bin/env node
// The import graph of src/: every relative import, `import type`, `export … from` and dynamic
// `import()` of every .ts file, read with TypeScript's own pre-processor (no type checking, so
// the whole tree is read in about a second). Three rules are checked:
//
// - files: no file reaches itself through its imports;
// - folders: no top-level folder of src/ (a subfolder such as registry/etcd belongs to
//   registry; src/index.ts is the folder ".") reaches itself through the imports of its files;
// - layers: every folder is in one row of LAYERS and imports only folders of lower rows.
//
// Type-only imports count: a folder that needs another's types sits above it just as much as
// one that calls it, and a cycle of types is where a cycle of calls starts.
//
// Usage: node scripts/import-graph.mjs [dir]      (dir defaults to src)
//        node scripts/import-graph.mjs --layers   also prints each folder's row and imports
// Exits 1 and prints every violation when one is found. docs/ARCHITECTURE.md explains the rows.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

/**
 * The folders of src/, bottom row first. A folder may import folders of lower rows only, never
 * one of its own row or above; a new folder must be given a row here.
 */
export const LAYERS = [
  ['errors', 'common', 'call'],
  ['log', 'config', 'decorators', 'serializer', 'registry', 'admission'],
  ['transport', 'loadbalance', 'inference'],
  ['cluster', 'filter', 'proxy', 'sim'],
  ['trace', 'metrics'],
  ['spi'],
  ['client', 'server'],
  ['engine', 'gateway', 'testing'],
  ['cli', '.'],
];

/**
 * Reads the relative imports of every .ts file under `root`.
 * @param {string} root the folder to read (src/)
 * @returns {Map<string, Set<string>>} file (relative to root, `/`-separated) -> files it imports
 */
export function readImportGraph(root) {
  const base = resolve(root);
  const files = listTsFiles(base);
  const known = new Set(files.map((file) => toKey(base, file)));
  const graph = new Map();
  for (const file of files) {
    const edges = new Set();
    const info = ts.preProcessFile(readFileSync(file, 'utf8'), true, true);
    for (const { fileName } of info.importedFiles) {
      if (!fileName.startsWith('.')) continue;
      const target = resolveSpecifier(base, dirname(file), fileName, known);
      if (target) edges.add(target);
    }
    graph.set(toKey(base, file), edges);
  }
  return graph;
}

/**
 * The top-level folder a file belongs to; a file directly in the root belongs to `.`.
 * @param {string} file a key of the graph
 */
export function folderOf(file) {
  const slash = file.indexOf('/');
  return slash < 0 ? '.' : file.slice(0, slash);
}

/**
 * Folds a file graph into a folder graph, keeping one file edge per folder edge as the example
 * to print.
 * @param {Map<string, Set<string>>} graph
 * @returns {{ graph: Map<string, Set<string>>, via: Map<string, string> }} via: "a -> b" -> "a/x.ts -> b/y.ts"
 */
export function foldToFolders(graph) {
  const folders = new Map();
  const via = new Map();
  for (const [from, targets] of graph) {
    const a = folderOf(from);
    if (!folders.has(a)) folders.set(a, new Set());
    for (const to of targets) {
      const b = folderOf(to);
      if (a === b) continue;
      folders.get(a).add(b);
      if (!via.has(`${a} -> ${b}`)) via.set(`${a} -> ${b}`, `${from} -> ${to}`);
    }
  }
  return { graph: folders, via };
}

/**
 * The strongly connected components of more than one node (or of a node importing itself):
 * each with its members and one shortest cycle through them, first node repeated at the end.
 * @param {Map<string, Set<string>>} graph
 * @returns {{ members: string[], cycle: string[] }[]}
 */
export function findCycles(graph) {
  const cycles = [];
  for (const members of stronglyConnected(graph)) {
    const [start] = members;
    if (members.length === 1 && !graph.get(start)?.has(start)) continue;
    cycles.push({ members, cycle: shortestCycle(graph, start, new Set(members)) });
  }
  return cycles;
}

/**
 * Every folder import that breaks `layers` (an import of the same row or a higher one), and
 * every folder missing from `layers`.
 * @param {Map<string, Set<string>>} folders
 * @param {readonly (readonly string[])[]} layers
 * @returns {{ unknown: string[], upward: [string, string][] }}
 */
export function checkLayers(folders, layers) {
  const row = new Map();
  layers.forEach((names, index) => names.forEach((name) => row.set(name, index)));
  const unknown = [...folders.keys()].filter((folder) => !row.has(folder)).sort();
  const upward = [];
  for (const [from, targets] of folders) {
    for (const to of targets) {
      if (row.has(from) && row.has(to) && row.get(to) >= row.get(from)) upward.push([from, to]);
    }
  }
  return { unknown, upward: upward.sort((a, b) => a.join().localeCompare(b.join())) };
}

/**
 * All three checks on one tree.
 * @param {string} root
 * @param {readonly (readonly string[])[]} [layers]
 */
export function checkImportGraph(root, layers = LAYERS) {
  const graph = readImportGraph(root);
  const folded = foldToFolders(graph);
  return { files: findCycles(graph), folders: findCycles(folded.graph), ...checkLayers(folded.graph, layers), via: folded.via };
}

/**
 * Human-readable report of a check, empty when nothing is wrong.
 * @param {ReturnType<typeof checkImportGraph>} result
 */
export function formatViolations(result) {
  const lines = [];
  const among = (members) => (members.length > 2 ? ` (one of the cycles among ${members.join(', ')})` : '');
  for (const { members, cycle } of result.files) lines.push(`file cycle: ${cycle.join(' -> ')}${among(members)}`);
  for (const { members, cycle } of result.folders) {
    lines.push(`folder cycle: ${cycle.join(' -> ')}${among(members)}`);
    for (let i = 0; i + 1 < cycle.length; i++) lines.push(`  ${result.via.get(`${cycle[i]} -> ${cycle[i + 1]}`)}`);
  }
  for (const [from, to] of result.upward)
    lines.push(`layer: ${from} may not import ${to} (same row or above in LAYERS): ${result.via.get(`${from} -> ${to}`)}`);
  for (const folder of result.unknown) lines.push(`layer: folder ${folder} has no row in LAYERS (scripts/import-graph.mjs)`);
  return lines.join('\n');
}

function listTsFiles(dir) {
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out.push(...listTsFiles(path));
    else if (name.endsWith('.ts')) out.push(path);
  }
  return out;
}

function toKey(base, file) {
  return relative(base, file).split(sep).join('/');
}

// NodeNext specifiers name the emitted file: './x.js' is x.ts (or x.d.ts, or x/index.ts).
function resolveSpecifier(base, fromDir, specifier, known) {
  const path = toKey(base, resolve(fromDir, specifier));
  const stem = path.replace(/\.(js|ts|mjs|cjs)$/, '');
  for (const candidate of [`${stem}.ts`, `${stem}.d.ts`, `${path}/index.ts`, path]) {
    if (known.has(candidate)) return candidate;
  }
  return undefined;
}

// Tarjan's algorithm, iterative so that a deep import chain cannot overflow the stack.
function stronglyConnected(graph) {
  let counter = 0;
  const index = new Map();
  const low = new Map();
  const onStack = new Set();
  const stack = [];
  const components = [];
  for (const root of graph.keys()) {
    if (index.has(root)) continue;
    const work = [{ node: root, next: [...(graph.get(root) ?? [])], at: 0 }];
    index.set(root, counter);
    low.set(root, counter++);
    stack.push(root);
    onStack.add(root);
    while (work.length > 0) {
      const frame = work[work.length - 1];
      if (frame.at < frame.next.length) {
        const next = frame.next[frame.at++];
        if (!index.has(next)) {
          index.set(next, counter);
          low.set(next, counter++);
          stack.push(next);
          onStack.add(next);
          work.push({ node: next, next: [...(graph.get(next) ?? [])], at: 0 });
        } else if (onStack.has(next)) {
          low.set(frame.node, Math.min(low.get(frame.node), index.get(next)));
        }
        continue;
      }
      work.pop();
      if (work.length > 0) {
        const parent = work[work.length - 1].node;
        low.set(parent, Math.min(low.get(parent), low.get(frame.node)));
      }
      if (low.get(frame.node) === index.get(frame.node)) {
        const component = [];
        let member;
        do {
          member = stack.pop();
          onStack.delete(member);
          component.push(member);
        } while (member !== frame.node);
        components.push(component.sort());
      }
    }
  }
  return components;
}

// Breadth-first from start back to start, staying inside its component.
function shortestCycle(graph, start, component) {
  const parent = new Map();
  const queue = [start];
  while (queue.length > 0) {
    const node = queue.shift();
    for (const next of graph.get(node) ?? []) {
      if (!component.has(next)) continue;
      if (next === start) {
        const path = [start];
        for (let at = node; at !== start; at = parent.get(at)) path.push(at);
        path.push(start);
        return [start, ...path.slice(1, -1).reverse(), start];
      }
      if (!parent.has(next)) {
        parent.set(next, node);
        queue.push(next);
      }
    }
  }
  return [start, start];
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const root = args.find((arg) => !arg.startsWith('--')) ?? join(dirname(fileURLToPath(import.meta.url)), '..', 'src');
  const result = checkImportGraph(root);
  const report = formatViolations(result);
  if (report) {
    console.error(report);
    process.exit(1);
  }
  if (args.includes('--layers')) {
    const { graph } = foldToFolders(readImportGraph(root));
    LAYERS.forEach((names, index) => {
      for (const folder of names) console.log(`${index}  ${folder.padEnd(12)} -> ${[...(graph.get(folder) ?? [])].sort().join(', ')}`);
    });
  }
  console.log(`import graph of ${relative(process.cwd(), root) || '.'}: no file or folder cycle, every import goes down the layers`);
}
