import 'reflect-metadata';
import { describe, expect, it } from 'vitest';
import {
  RpcMethod,
  RpcReference,
  RpcService,
  defineService,
  getMethodMetadata,
  unary,
  getReferenceMetadata,
  getServiceMetadata,
} from '../../../src/decorators/decorators.js';

class GenerateRequest {
  prompt = '';
}

@RpcService({ name: 'inference.LLM', version: '1.0.0', group: 'gpu' })
class Llm {
  @RpcMethod({ idempotent: true, timeoutMs: 500 })
  async embed(text: string): Promise<number[]> {
    return [text.length];
  }

  @RpcMethod({ stream: true })
  async *generate(request: GenerateRequest): AsyncGenerator<string> {
    yield request.prompt;
  }

  undecorated(): void {}
}

@RpcService({ name: 'inference.LLM2' })
class LlmChild extends Llm {
  @RpcMethod()
  async extra(): Promise<void> {}
}

describe('decorators', () => {
  it('canary: the test transform really emits design:* metadata (vite 7 esbuild did not)', () => {
    expect(Reflect.getMetadata('design:paramtypes', Llm.prototype, 'generate')).toEqual([GenerateRequest]);
    expect(getMethodMetadata(new Llm()).get('generate')?.paramTypes).toEqual(['GenerateRequest']);
    expect(getMethodMetadata(new Llm()).get('embed')?.paramTypes).toEqual(['String']);
  });

  it('records service and method options in our own store', () => {
    expect(getServiceMetadata(new Llm())).toEqual({ name: 'inference.LLM', version: '1.0.0', group: 'gpu' });
    const methods = getMethodMetadata(new Llm());
    expect([...methods.keys()].sort()).toEqual(['embed', 'generate']);
    expect(methods.get('embed')).toMatchObject({ idempotent: true, stream: false, timeoutMs: 500 });
    expect(methods.get('generate')).toMatchObject({ idempotent: false, stream: true, timeoutMs: undefined });
  });

  it('inherits decorated methods from base classes', () => {
    expect([...getMethodMetadata(new LlmChild()).keys()].sort()).toEqual(['embed', 'extra', 'generate']);
    expect(getServiceMetadata(new LlmChild())?.name).toBe('inference.LLM2');
    expect(getServiceMetadata({})).toBeUndefined();
  });

  it('records references for injection', () => {
    class Chat {
      @RpcReference('inference.LLM', { version: '1.0.0' })
      llm!: unknown;
    }
    expect(getReferenceMetadata(new Chat())).toEqual([{ property: 'llm', service: 'inference.LLM', options: { version: '1.0.0' } }]);
  });

  it('rejects bad options with the key, the value and what is allowed', () => {
    expect(() => RpcService({ name: '' })).toThrow('shuttle-rpc: invalid @RpcService name: "" (allowed: a non-empty string of at most 255 bytes)');
    expect(() => RpcService({ name: 'x', versoin: '1' } as never)).toThrow(/unknown option @RpcService\.versoin \(known: name, version, group\)/);
    expect(() => RpcMethod({ timeoutMs: -5 })).toThrow('shuttle-rpc: invalid @RpcMethod timeoutMs: -5 (allowed: an integer from 1 to 2147483647)');
    expect(() => RpcMethod({ stream: 'yes' as never })).toThrow(/invalid @RpcMethod stream: "yes" \(allowed: true or false\)/);
    expect(() => RpcReference('', {})).toThrow(/invalid @RpcReference service/);
  });

  it('a descriptor may not list then, toJSON or constructor: its proxy would be awaited, serialized or constructed by accident', () => {
    for (const name of ['then', 'toJSON', 'constructor']) {
      expect(() => defineService('x.Y', { [name]: unary, ok: unary } as never)).toThrow(
        `shuttle-rpc: defineService x.Y: the method name "${name}" is reserved (then, toJSON, constructor): a proxy with such a method would be awaited, serialized or constructed by accident; rename the method`,
      );
    }
  });

  it('refuses to decorate something that is not a method', () => {
    const decorate = RpcMethod();
    expect(() => decorate({}, 'field', { get: () => 1 })).toThrow(/must decorate a method/);
  });
});
