import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

/*
 * A user can name every type the package's public signatures use: an option object's nested
 * options (`ClientOptions.circuitBreaker`), what a function returns, what a public property
 * holds. A type reachable from an entry point but exported by none makes a user write
 * `NonNullable<ClientOptions['circuitBreaker']>` or copy the shape. Each entry of the exports
 * map is read from its source (dist/x.js -> src/x.ts) and every type reachable from its exports
 * (properties, parameters, results, type arguments, unions) is looked up among them.
 */
const root = fileURLToPath(new URL('../../../', import.meta.url));
const pkg = JSON.parse(readFileSync(`${root}package.json`, 'utf8')) as { exports: Record<string, string | { default: string }> };

/** Types reachable from an entry that are left unexported on purpose, each with why (what only they lead to is not looked at). */
const NOT_NAMED: Record<string, string> = {
  RpcServiceDecorator: 'the type of what @RpcService(…) returns: applied, never named',
  RpcMethodDecorator: 'the type of what @RpcMethod(…) returns: applied, never named',
  RpcReferenceDecorator: 'the type of what @RpcReference(…) returns: applied, never named',
  Upstream: "OpenAiEngineService's constructor plumbing: startEngineWorker builds it",
  PromptTokens: "OpenAiEngineService's constructor plumbing: startEngineWorker builds it",
  EngineStall: "OpenAiEngineService's constructor plumbing: startEngineWorker builds it",
  BlockTable: "KvCacheState's constructor plumbing: KvCacheState.start builds it",
  PromptLedger: "KvCacheState's constructor plumbing: KvCacheState.start builds it",
};

/** `name -> the path from an export to it`, for every reachable type of this package no entry exports. */
function unnamedTypes(): Map<string, string> {
  const entryFiles = Object.entries(pkg.exports)
    .filter(([entry]) => !entry.endsWith('.json'))
    .map(
      ([entry, target]) =>
        [entry, `${root}${(typeof target === 'string' ? target : target.default).replace(/^\.\/dist\//, 'src/').replace(/\.js$/, '.ts')}`] as const,
    );
  const options = {
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    target: ts.ScriptTarget.ES2022,
    strict: true,
    noEmit: true,
  };
  const program = ts.createProgram(
    entryFiles.map(([, file]) => file),
    { ...options, experimentalDecorators: true, types: ['node'], typeRoots: [`${root}node_modules/@types`] },
  );
  const checker = program.getTypeChecker();
  const exported = new Set<ts.Symbol>();
  const starts: Array<[string, ts.Symbol]> = [];
  for (const [entry, file] of entryFiles) {
    const module = checker.getSymbolAtLocation(program.getSourceFile(file)!)!;
    for (const symbol of checker.getExportsOfModule(module)) {
      const target = symbol.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(symbol) : symbol;
      exported.add(target);
      starts.push([`${entry}:${symbol.name}`, target]);
    }
  }
  const source = `${root}src/`;
  const named = ts.SymbolFlags.Interface | ts.SymbolFlags.TypeAlias | ts.SymbolFlags.Class | ts.SymbolFlags.Enum;
  const seen = new Set<ts.Type>();
  const unnamed = new Map<string, string>();
  const visit = (type: ts.Type, path: string, depth: number): void => {
    if (depth > 8 || seen.has(type)) return;
    seen.add(type);
    const symbol = type.aliasSymbol ?? type.getSymbol();
    const ours = symbol?.declarations?.some((declaration) => declaration.getSourceFile().fileName.startsWith(source)) === true;
    if (ours && symbol!.flags & named && !exported.has(symbol!)) {
      if (!unnamed.has(symbol!.name)) unnamed.set(symbol!.name, path);
      // What only a listed type leads to is that type's own business.
      if (symbol!.name in NOT_NAMED) return;
    }
    if (type.isUnionOrIntersection()) for (const member of type.types) visit(member, path, depth + 1);
    for (const argument of type.aliasTypeArguments ?? []) visit(argument, path, depth + 1);
    if (!(type.flags & ts.TypeFlags.Object)) return;
    // Only this package's own objects are walked into: a dependency's types are its to export.
    if (symbol !== undefined && !ours && !(symbol.flags & ts.SymbolFlags.TypeLiteral)) {
      for (const argument of checker.getTypeArguments(type as ts.TypeReference) ?? []) visit(argument, path, depth + 1);
      return;
    }
    for (const property of type.getProperties()) {
      const declaration = property.valueDeclaration ?? property.declarations?.[0];
      if (declaration === undefined || property.name.startsWith('#') || ts.getCombinedModifierFlags(declaration) & ts.ModifierFlags.Private) continue;
      visit(checker.getTypeOfSymbolAtLocation(property, declaration), `${path}.${property.name}`, depth + 1);
    }
    for (const signature of [...type.getCallSignatures(), ...type.getConstructSignatures()]) {
      for (const parameter of signature.getParameters()) visit(checker.getTypeOfSymbol(parameter), `${path}(${parameter.name})`, depth + 1);
      visit(signature.getReturnType(), `${path}()`, depth + 1);
    }
  };
  for (const [path, symbol] of starts) {
    const declaration = symbol.declarations?.[0];
    if (declaration === undefined) continue;
    visit(
      symbol.flags & (ts.SymbolFlags.Interface | ts.SymbolFlags.TypeAlias)
        ? checker.getDeclaredTypeOfSymbol(symbol)
        : checker.getTypeOfSymbolAtLocation(symbol, declaration),
      path,
      0,
    );
    if (symbol.flags & ts.SymbolFlags.Class) visit(checker.getDeclaredTypeOfSymbol(symbol), path, 0);
  }
  return unnamed;
}

describe('the public types', () => {
  it('every type a public signature uses is exported by an entry point, or is listed with why not', { timeout: 60_000 }, () => {
    const unnamed = unnamedTypes();
    const unexplained = [...unnamed].filter(([name]) => !(name in NOT_NAMED)).map(([name, path]) => `${name} (reached by ${path})`);
    expect(unexplained).toEqual([]);
    // The list stays honest: each name on it is still reachable and still unexported.
    expect(Object.keys(NOT_NAMED).filter((name) => !unnamed.has(name))).toEqual([]);
  });
});
