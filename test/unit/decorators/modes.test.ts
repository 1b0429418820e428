import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import * as decorators from '../../../src/decorators/decorators.js';
import { getMethodMetadata, getReferenceMetadata, getServiceMetadata } from '../../../src/decorators/decorators.js';

/*
 * The same class sources compiled by tsc in each decorator mode, then run: legacy
 * (`experimentalDecorators`, with design metadata) and standard TC39 decorators (no
 * experimentalDecorators, as a new TypeScript 5 project has). Both must record the same.
 */

type Mode = 'legacy' | 'standard';
const MODES: readonly Mode[] = ['legacy', 'standard'];

/** Compiles `source` (importing the decorators from '#decorators') in `mode` and runs it; returns its exports. */
// biome-ignore lint/suspicious/noExplicitAny: the compiled module's exports are classes of the source's own shapes
function compile(mode: Mode, source: string, modules: Record<string, unknown> = {}): Record<string, any> {
  const { outputText, diagnostics } = ts.transpileModule(source, {
    reportDiagnostics: true,
    compilerOptions: {
      target: ts.ScriptTarget.ES2022,
      module: ts.ModuleKind.CommonJS,
      ...(mode === 'legacy' ? { experimentalDecorators: true, emitDecoratorMetadata: true, useDefineForClassFields: false } : {}),
    },
  });
  expect(diagnostics ?? []).toEqual([]);
  // Proof that the mode is the one asked for: tsc's helper for each.
  expect(outputText).toContain(mode === 'standard' ? '__esDecorate(' : '__decorate(');
  // biome-ignore lint/suspicious/noExplicitAny: as above
  const exports: Record<string, any> = {};
  const require = (name: string): unknown => (name === '#decorators' ? decorators : modules[name]);
  new Function('exports', 'require', outputText)(exports, require);
  return exports;
}

const SERVICES = `
import { RpcMethod, RpcReference, RpcService, defineService, serverStream, unary } from '#decorators';
export class GenerateRequest { prompt = ''; }

@RpcService({ name: 'inference.LLM', version: '1.0.0', group: 'gpu' })
export class Llm {
  @RpcMethod({ idempotent: true, timeoutMs: 500 })
  async embed(text: string): Promise<number[]> { return [text.length]; }
  @RpcMethod({ stream: true })
  async *generate(request: GenerateRequest): AsyncGenerator<string> { yield request.prompt; }
  undecorated(): void {}
}

@RpcService({ name: 'inference.LLM2' })
export class LlmChild extends Llm {
  @RpcMethod()
  async extra(): Promise<void> {}
}

export const Echo = defineService('test.Echo', { echo: unary, count: serverStream });

@RpcService(Echo, { version: '2' })
export class EchoImpl {
  @RpcMethod({ idempotent: true })
  async echo(value: unknown) { return value; }
  async *count(n: number) { for (let i = 0; i < n; i++) yield i; }
}

export class Chat {
  @RpcReference('inference.LLM', { version: '1.0.0' }) llm!: unknown;
  @RpcReference(Echo) echo!: unknown;
}
`;

describe.each(MODES)('%s decorators, compiled by tsc', (mode) => {
  const out = compile(mode, SERVICES);

  it('record the service and method options', () => {
    expect(getServiceMetadata(new out.Llm())).toEqual({ name: 'inference.LLM', version: '1.0.0', group: 'gpu' });
    const methods = getMethodMetadata(new out.Llm());
    expect([...methods.keys()].sort()).toEqual(['embed', 'generate']);
    expect(methods.get('embed')).toMatchObject({ name: 'embed', idempotent: true, stream: false, timeoutMs: 500 });
    expect(methods.get('generate')).toMatchObject({ name: 'generate', idempotent: false, stream: true, timeoutMs: undefined });
  });

  it('inherit decorated methods, and a subclass has its own service', () => {
    expect([...getMethodMetadata(new out.LlmChild()).keys()].sort()).toEqual(['embed', 'extra', 'generate']);
    expect(getServiceMetadata(new out.LlmChild())?.name).toBe('inference.LLM2');
    // The base class's records are not touched by the subclass's decorators.
    expect([...getMethodMetadata(new out.Llm()).keys()].sort()).toEqual(['embed', 'generate']);
  });

  it('export a descriptor service with the descriptor kinds and @RpcMethod policy', () => {
    const meta = getServiceMetadata(new out.EchoImpl());
    expect(meta).toMatchObject({ name: 'test.Echo', version: '2', group: '' });
    expect(meta?.descriptor).toBe(out.Echo);
    const methods = getMethodMetadata(new out.EchoImpl());
    expect(methods.get('echo')).toMatchObject({ idempotent: true, stream: false });
    expect(methods.get('count')).toMatchObject({ idempotent: false, stream: true, timeoutMs: undefined });
    expect(methods.size).toBe(2);
  });

  it('record references by name and by descriptor', () => {
    const references = getReferenceMetadata(new out.Chat());
    expect(references).toEqual([
      { property: 'llm', service: 'inference.LLM', options: { version: '1.0.0' } },
      { property: 'echo', service: 'test.Echo', descriptor: out.Echo, options: {} },
    ]);
  });

  it('a descriptor contradicted by @RpcMethod fails when the class is defined', () => {
    const source = (body: string): string => `
      import { RpcMethod, RpcService, defineService, serverStream, unary } from '#decorators';
      const Echo = defineService('test.Echo', { echo: unary, count: serverStream });
      @RpcService(Echo) export class Impl { ${body} }`;
    const stream = '@RpcMethod({ stream: true }) async *echo() {} async *count() {}';
    expect(() => compile(mode, source(stream))).toThrow(
      'shuttle-rpc: Impl.echo has @RpcMethod({ stream: true }) but service descriptor test.Echo declares it unary',
    );
    const extra = 'async echo() {} async *count() {} @RpcMethod() async secret() {}';
    expect(() => compile(mode, source(extra))).toThrow(
      'shuttle-rpc: Impl.secret has @RpcMethod but service descriptor test.Echo does not list it (it lists echo, count)',
    );
    const missing = compile(mode, source('async echo() {}'));
    expect(() => getMethodMetadata(new missing.Impl())).toThrow(
      'shuttle-rpc: Impl.count is listed in service descriptor test.Echo but is not a method of the instance',
    );
  });

  it('refuse method names a proxy would call by accident (then, toJSON)', () => {
    for (const name of ['then', 'toJSON']) {
      const decorated = `import { RpcMethod, RpcService } from '#decorators'; @RpcService({ name: 'x.Y' }) export class A { @RpcMethod() async ${name}() {} }`;
      expect(() => compile(mode, decorated)).toThrow(`shuttle-rpc: @RpcMethod on ${name}: the method name "${name}" is reserved (then, toJSON, constructor)`);
    }
  });

  it('refuse static members', () => {
    const staticMethod = `import { RpcMethod } from '#decorators'; export class A { @RpcMethod() static m() {} }`;
    expect(() => compile(mode, staticMethod)).toThrow(/@RpcMethod on m must decorate an instance method, not a static one/);
    const staticField = `import { RpcReference } from '#decorators'; export class A { @RpcReference('x') static f: unknown; }`;
    expect(() => compile(mode, staticField)).toThrow(/@RpcReference on f must decorate an instance field, not a static one/);
  });
});

describe('standard decorators only', () => {
  it('refuse members a name cannot reach, and the wrong kind of member', () => {
    const cases: Array<[string, RegExp]> = [
      [
        `import { RpcMethod } from '#decorators'; export class A { @RpcMethod() #m() {} }`,
        /@RpcMethod on #m must decorate a public method, not a #private one/,
      ],
      [
        `import { RpcMethod } from '#decorators'; export class A { @RpcMethod() get g() { return 1; } }`,
        /@RpcMethod on g must decorate a method, not a getter/,
      ],
      [`import { RpcReference } from '#decorators'; export class A { @RpcReference('x') m() {} }`, /@RpcReference on m must decorate a field, not a method/],
      [
        `import { RpcService } from '#decorators'; export class A { @(RpcService({ name: 'x' }) as any) m() {} }`,
        /@RpcService decorates a class, not a method/,
      ],
    ];
    for (const [source, message] of cases) expect(() => compile('standard', source)).toThrow(message);
  });

  it('a subclass compiled in one mode extends a base compiled in the other', () => {
    const base = compile(
      'legacy',
      `
      import { RpcMethod } from '#decorators';
      export class Base { @RpcMethod({ idempotent: true }) async a() {} }`,
    );
    const child = compile(
      'standard',
      `import { RpcMethod, RpcService } from '#decorators';
      import { Base } from './base';
      @RpcService({ name: 'mixed' }) export class Child extends Base { @RpcMethod({ stream: true }) async *b() {} }`,
      { './base': base },
    );
    expect(getServiceMetadata(new child.Child())?.name).toBe('mixed');
    expect(getMethodMetadata(new child.Child())).toEqual(
      new Map([
        ['a', expect.objectContaining({ idempotent: true, stream: false })],
        ['b', expect.objectContaining({ idempotent: false, stream: true })],
      ]),
    );
  });

  it('say what to do when the compiler hands over no metadata object', () => {
    const context = { kind: 'method', name: 'm', static: false, private: false, metadata: undefined, addInitializer() {} };
    expect(() => (decorators.RpcMethod() as (value: unknown, context: unknown) => void)(() => {}, context)).toThrow(
      /@RpcMethod got a standard decorator context without metadata: Symbol.metadata was undefined when the class was defined/,
    );
  });

  it('keep their records in the class metadata TypeScript installs as Class[Symbol.metadata]', () => {
    const { Llm } = compile('standard', SERVICES);
    const metadata = Llm[(Symbol as unknown as { metadata: symbol }).metadata] as object;
    expect(Object.getOwnPropertySymbols(metadata)).toEqual(expect.arrayContaining([Symbol.for('shuttle-rpc:service'), Symbol.for('shuttle-rpc:methods')]));
  });

  it('carry no design:* parameter types (TypeScript emits none for them)', () => {
    expect(getMethodMetadata(new (compile('standard', SERVICES).Llm)()).get('generate')?.paramTypes).toEqual([]);
    expect(getMethodMetadata(new (compile('legacy', SERVICES).Llm)()).get('generate')?.paramTypes).toEqual(['GenerateRequest']);
  });
});
