import { afterEach, describe, expect, it } from 'vitest';
import { RpcMethod, RpcService, createClient, createServer, type CallContext, type RpcClient } from 'shuttle-rpc';

/*
 * W3C trace context through real calls over loopback sockets: a consumer starts a trace, a
 * provider that calls another service continues it.
 */
interface TraceApi {
  whoami(request: null): Promise<string | undefined>;
  relay(): Promise<{ mine: string | undefined; downstream: string | undefined }>;
}

@RpcService({ name: 'test.Trace', version: '1.0.0' })
class TraceService {
  constructor(readonly downstream: () => RpcClient) {}

  @RpcMethod()
  async whoami(_request: unknown, context: CallContext): Promise<string | undefined> {
    return context.metadata['traceparent'];
  }

  @RpcMethod()
  async relay(_request: unknown, context: CallContext): Promise<{ mine: string | undefined; downstream: string | undefined }> {
    return { mine: context.metadata['traceparent'], downstream: await this.downstream().proxy<TraceApi>('test.Trace').whoami(null) };
  }
}

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const FORMAT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-01$/;

describe('trace-context filter', () => {
  it('starts a trace per call, continues it through a provider that calls on, and keeps a given one', async () => {
    const registry = `memory://trace-${process.pid}`;
    const client = await createClient({ registry, filters: ['trace-context'], config: false });
    cleanups.push(() => client.close());
    const server = await createServer({ services: [new TraceService(() => client)], registry, config: false });
    cleanups.push(() => server.close());
    const proxy = client.proxy<TraceApi>('test.Trace');

    const first = FORMAT.exec((await proxy.whoami(null)) ?? '');
    const second = FORMAT.exec((await proxy.whoami(null)) ?? '');
    expect(first).not.toBeNull();
    expect(second).not.toBeNull();
    expect(first![1]).not.toBe(second![1]);

    const { mine, downstream } = await proxy.relay();
    const [outer, inner] = [FORMAT.exec(mine ?? ''), FORMAT.exec(downstream ?? '')];
    expect(outer).not.toBeNull();
    expect(inner).not.toBeNull();
    // Same trace, a new span for the nested call.
    expect(inner![1]).toBe(outer![1]);
    expect(inner![2]).not.toBe(outer![2]);

    const given = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
    expect(await proxy.whoami(null, { metadata: { traceparent: given } })).toBe(given);
    // An invalid one is replaced by a new trace rather than failing the call.
    expect(await proxy.whoami(null, { metadata: { traceparent: 'garbage' } })).toMatch(FORMAT);
  });

  it('without the filter, nothing is added', async () => {
    const registry = `memory://trace-off-${process.pid}`;
    const client = await createClient({ registry, config: false });
    cleanups.push(() => client.close());
    const server = await createServer({ services: [new TraceService(() => client)], registry, config: false });
    cleanups.push(() => server.close());
    expect(await client.proxy<TraceApi>('test.Trace').whoami(null)).toBeUndefined();
  });

  it('rejects options it does not know', async () => {
    await expect(createClient({ filters: [{ type: 'trace-context', options: { sampler: 'always' } }], config: false })).rejects.toThrow(
      /trace-context filter options/,
    );
  });
});
