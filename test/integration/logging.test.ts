import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { RpcCode, RpcError, RpcMethod, RpcService, createClient, createServer } from 'shuttle-rpc';
import { EchoService, type EchoApi } from '../fixtures/services.js';
import { logCollector } from '../helpers/log-lines.js';
import { rejection, waitUntil } from '../helpers/wait.js';

/** Throws what a handler can throw that is hard even to look at. */
@RpcService({ name: 'test.Hostile' })
class HostileThrows {
  @RpcMethod()
  async throwValue(kind: string): Promise<never> {
    throw hostileValue(kind);
  }
}

function hostileValue(kind: string): unknown {
  switch (kind) {
    case 'message-getter': {
      const error = new Error('x');
      Object.defineProperty(error, 'message', {
        get() {
          throw new Error('no message for you');
        },
      });
      return error;
    }
    case 'null-prototype':
      return Object.create(null);
    case 'toString-throws':
      return {
        toString() {
          throw new Error('no text for you');
        },
      };
    default:
      return new Proxy(
        {},
        {
          getPrototypeOf() {
            throw new Error('no prototype for you');
          },
          get() {
            throw new Error('no property for you');
          },
        },
      );
  }
}

/** A generation service whose engine is broken (`fail`) or works: fails before its first token, or yields two. */
@RpcService({ name: 'test.Gen' })
class Generation {
  calls = 0;
  constructor(private readonly fail: boolean) {}

  @RpcMethod({ stream: true })
  async *generate(_prompt: string): AsyncGenerator<string> {
    this.calls++;
    if (this.fail) throw new RpcError(RpcCode.UNAVAILABLE, 'engine answered 500');
    yield 'a';
    yield 'b';
  }
}

/* Structured logs (pino): silent at info while all is well, warnings for what an operator must see. */
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

describe('logging', () => {
  it('is silent at the default level through calls, failures the caller chose, and a graceful close', async () => {
    const logs = logCollector();
    const server = await createServer({ services: [new EchoService()], registry: false, log: { stream: logs.stream }, config: false });
    const client = await createClient({ registry: server.url, log: { stream: logs.stream }, config: false });
    const echo = client.proxy<EchoApi>('test.Echo');
    for (let i = 0; i < 5; i++) await echo.add({ a: i, b: 1 });
    await echo.add({ a: 'x' } as never).catch(() => {});
    await echo.fail({ code: RpcCode.NOT_FOUND, message: 'no such model' }).catch(() => {});
    await client.close();
    await server.close();
    expect(logs.lines).toEqual([]);
  });

  it('at debug: the server listening and draining, the client seeing its providers', async () => {
    const logs = logCollector();
    const server = await createServer({ services: [new EchoService()], registry: false, log: { level: 'debug', stream: logs.stream }, config: false });
    const client = await createClient({ registry: server.url, log: { level: 'debug', stream: logs.stream }, config: false });
    await client.proxy<EchoApi>('test.Echo').echo(1);
    await client.close();
    await server.close();
    const messages = logs.lines.map((line) => `${line['component']}: ${line['msg']}`);
    expect(messages).toEqual(expect.arrayContaining(['server: listening', 'client: providers changed', 'server: draining', 'server: closed']));
    const listening = logs.lines.find((line) => line['msg'] === 'listening')!;
    expect(listening).toMatchObject({ level: 20, name: 'shuttle-rpc', endpoints: [{ protocol: 'tcp', port: server.port }], services: ['test.Echo@1.0.0'] });
    expect(logs.lines.find((line) => line['msg'] === 'providers changed')).toMatchObject({ service: 'test.Echo', providers: [`127.0.0.1:${server.port}`] });
  });

  it('logs the message and stack under the correlation id the caller gets when a handler throws something other than an RpcError', async () => {
    const logs = logCollector();
    const server = await createServer({ services: [new EchoService()], registry: false, log: { stream: logs.stream }, config: false });
    cleanups.push(() => server.close());
    const client = await createClient({ registry: server.url, log: false, config: false });
    cleanups.push(() => client.close());
    const failure = (await rejection(client.proxy<EchoApi>('test.Echo').failPlain('disk on fire'))) as RpcError;
    const correlationId = failure.details?.['correlationId'];
    expect(correlationId).toMatch(/^[0-9a-f-]{36}$/);
    await waitUntil(() => logs.lines.length > 0, 'a log line');
    expect(logs.lines[0]).toMatchObject({
      level: 50,
      component: 'server',
      service: 'test.Echo',
      method: 'failPlain',
      correlationId,
      msg: `test.Echo.failPlain threw Error; the caller gets INTERNAL with correlation id ${correlationId}`,
    });
    expect((logs.lines[0]!['err'] as { stack: string }).stack).toMatch(/Error: disk on fire\n\s+at /);
  });

  it('a caller whose every call makes its handler throw: at most 50 lines at once, then 10 a second; the next line counts those not logged, and the callers past the budget are told', async () => {
    const logs = logCollector();
    const server = await createServer({ services: [new EchoService()], registry: false, log: { stream: logs.stream }, config: false });
    cleanups.push(() => server.close());
    const client = await createClient({ registry: server.url, log: false, config: false });
    cleanups.push(() => client.close());
    const echo = client.proxy<EchoApi>('test.Echo');
    const started = performance.now();
    const failures = await Promise.all(Array.from({ length: 300 }, () => rejection(echo.failPlain('disk on fire')) as Promise<RpcError>));
    const seconds = (performance.now() - started) / 1000;
    // Without the budget: a line with a stack for every call, 300.
    expect(logs.lines.length).toBeGreaterThanOrEqual(50);
    expect(logs.lines.length).toBeLessThanOrEqual(50 + Math.ceil(10 * seconds) + 1);
    const unlogged = failures.filter((failure) => failure.message.includes("not in the provider's log"));
    expect(unlogged.length).toBe(300 - logs.lines.length);
    expect(unlogged[0]!.message).toMatch(
      /^\[internal\] test\.Echo\.failPlain failed \(correlation id [0-9a-f-]{36}; not in the provider's log: it was logging more than 10 failures a second\)$/,
    );
    await new Promise((resolve) => setTimeout(resolve, 200));
    // A client of its own: the first one's breaker is open after 300 failures.
    const another = await createClient({ registry: server.url, log: false, config: false });
    cleanups.push(() => another.close());
    await rejection(another.proxy<EchoApi>('test.Echo').failPlain('disk on fire'));
    await waitUntil(() => logs.lines.length > 300 - unlogged.length, 'one more line');
    // Each line written after some were held back counts them: together, every one.
    expect(logs.lines.reduce((sum, line) => sum + ((line['notLogged'] as number | undefined) ?? 0), 0)).toBe(unlogged.length);
    expect(logs.lines.at(-1)).toMatchObject({ msg: expect.stringMatching(/; \d+ such failures before it were not logged \(over 10 lines a second\)$/) });
  });

  it('names what a handler threw when it is not an Error: null, a string, a plain object', async () => {
    @RpcService({ name: 'test.Throws' })
    class Throws {
      @RpcMethod()
      async throwValue(kind: string): Promise<never> {
        throw kind === 'null' ? null : kind === 'string' ? 'nope' : { reason: 'nope' };
      }
    }
    const logs = logCollector();
    const server = await createServer({ services: [new Throws()], registry: false, log: { stream: logs.stream }, config: false });
    cleanups.push(() => server.close());
    const client = await createClient({ registry: server.url, log: false, config: false });
    cleanups.push(() => client.close());
    for (const kind of ['null', 'string', 'object']) {
      await expect(client.proxy<{ throwValue(kind: string): Promise<never> }>('test.Throws').throwValue(kind)).rejects.toMatchObject({
        code: RpcCode.INTERNAL,
      });
    }
    await waitUntil(() => logs.lines.length >= 3, 'three log lines');
    expect(logs.lines.map((line) => (line['msg'] as string).replace(/ with correlation id .*/, ''))).toEqual([
      'test.Throws.throwValue threw null; the caller gets INTERNAL',
      'test.Throws.throwValue threw string; the caller gets INTERNAL',
      'test.Throws.throwValue threw object; the caller gets INTERNAL',
    ]);
  });

  it('exposeErrors: true (development) adds the thrown message for the caller, still with the correlation id', async () => {
    const server = await createServer({ services: [new EchoService()], registry: false, log: false, exposeErrors: true, config: false });
    cleanups.push(() => server.close());
    const client = await createClient({ registry: server.url, log: false, config: false });
    cleanups.push(() => client.close());
    const failure = (await rejection(client.proxy<EchoApi>('test.Echo').failPlain('disk on fire'))) as RpcError;
    expect(failure).toMatchObject({ code: RpcCode.INTERNAL });
    expect(failure.message).toMatch(/^\[internal\] test\.Echo\.failPlain failed: disk on fire \(correlation id [0-9a-f-]{36}; /);
    await expect(
      createServer({ services: [new EchoService()], registry: false, log: false, exposeErrors: 'yes' as unknown as boolean, config: false }),
    ).rejects.toThrow(/exposeErrors.*true or false/);
  });

  it('a handler that throws a value whose getters or toString throw still answers INTERNAL, and the provider logs it and lives', async () => {
    const kinds = ['message-getter', 'null-prototype', 'toString-throws', 'proxy'];
    for (const exposeErrors of [false, true]) {
      const logs = logCollector();
      const server = await createServer({ services: [new HostileThrows()], registry: false, log: { stream: logs.stream }, exposeErrors, config: false });
      cleanups.push(() => server.close());
      const client = await createClient({ registry: server.url, log: false, config: false, timeoutMs: 5000 });
      cleanups.push(() => client.close());
      const hostile = client.proxy<{ throwValue(kind: string): Promise<never> }>('test.Hostile');
      for (const kind of kinds) {
        const failure = (await rejection(hostile.throwValue(kind))) as RpcError;
        expect(failure.code, `${kind}, exposeErrors ${exposeErrors}`).toBe(RpcCode.INTERNAL);
        expect(failure.message).toMatch(/test\.Hostile\.throwValue failed.*\(correlation id [0-9a-f-]{36}; /);
      }
      // One error line per call, each naming the method and its correlation id.
      expect(logs.lines.filter((line) => line['level'] === 50 && line['method'] === 'throwValue' && typeof line['correlationId'] === 'string')).toHaveLength(
        kinds.length,
      );
    }
  });

  it('a provider whose streams fail before their first chunk is ejected, and the rest of the calls go to the one that works', async () => {
    const logs = logCollector();
    const broken = new Generation(true);
    const working = new Generation(false);
    const bad = await createServer({ services: [broken], registry: 'memory://streams-eject', log: false, config: false });
    cleanups.push(() => bad.close());
    const good = await createServer({ services: [working], registry: 'memory://streams-eject', log: false, config: false });
    cleanups.push(() => good.close());
    const client = await createClient({ registry: 'memory://streams-eject', log: { stream: logs.stream }, config: false });
    cleanups.push(() => client.close());
    const gen = client.proxy<{ generate(prompt: string): AsyncGenerator<string> }>('test.Gen');
    const outcomes: string[] = [];
    // Random balancing: call until the broken provider has failed five times (bounded), then 20 more.
    for (let i = 0, after = 0; i < 200 && after < 20; i++) {
      if (outcomes.filter((outcome) => outcome === 'failed').length >= 5) after++;
      try {
        const tokens: string[] = [];
        for await (const token of gen.generate('hi')) tokens.push(token);
        outcomes.push(tokens.join(''));
      } catch (error) {
        outcomes.push((error as RpcError).code === RpcCode.UNAVAILABLE ? 'failed' : 'other');
      }
    }
    // Five failures in a row eject it; from then on every call works.
    expect(outcomes.filter((outcome) => outcome === 'failed')).toHaveLength(5);
    expect(outcomes.slice(outcomes.lastIndexOf('failed') + 1)).toEqual(Array.from({ length: 20 }, () => 'ab'));
    expect(broken.calls).toBe(5);
    expect(logs.lines).toEqual(
      expect.arrayContaining([expect.objectContaining({ level: 40, provider: `127.0.0.1:${bad.port}`, msg: 'provider ejected after consecutive failures' })]),
    );
  });

  it('publishes only load figures consumers accept: bad ones from load() are replaced by the provider’s own counts, with one warning each', async () => {
    const logs = logCollector();
    let figures: unknown = { waiting: -5, kvUsage: 'high' };
    const server = await createServer({
      services: [new EchoService()],
      registry: 'memory://load-checks',
      load: (() => figures) as never,
      loadIntervalMs: 20,
      log: { stream: logs.stream },
      config: false,
    });
    cleanups.push(() => server.close());
    await waitUntil(() => server.lastLoad !== undefined, 'a load report');
    expect(server.lastLoad).toMatchObject({ waiting: 0, kvUsage: 0, running: 0, draining: false });
    figures = Promise.resolve({ waiting: 3 });
    await new Promise((resolve) => setTimeout(resolve, 100));
    figures = { waiting: 3, kvUsage: 0.5 };
    await waitUntil(() => server.lastLoad?.waiting === 3, 'the good figures');
    expect(server.lastLoad?.kvUsage).toBe(0.5);
    const warnings = logs.lines.filter((line) => line['level'] === 40).map((line) => String(line['problem']));
    expect(warnings).toEqual([expect.stringMatching(/^waiting: -5 is not a finite number >= 0/), 'load() must return an object of load figures synchronously']);
  });

  it("warns when a provider is ejected and when its breaker opens, into the application's own pino logger", async () => {
    const logs = logCollector();
    const appLogger = pino({ level: 'info', base: { app: 'gateway' } }, logs.stream);
    const server = await createServer({ services: [new EchoService()], registry: false, log: false, config: false });
    cleanups.push(() => server.close());
    const client = await createClient({ registry: server.url, log: appLogger, config: false });
    cleanups.push(() => client.close());
    const echo = client.proxy<EchoApi>('test.Echo');
    for (let i = 0; i < 12; i++) await echo.fail({ code: RpcCode.UNAVAILABLE, message: 'GPU lost' }).catch(() => {});
    const provider = `127.0.0.1:${server.port}`;
    expect(logs.lines).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ level: 40, app: 'gateway', component: 'client', provider, times: 1, msg: 'provider ejected after consecutive failures' }),
        expect.objectContaining({
          level: 40,
          app: 'gateway',
          component: 'client',
          provider,
          msg: 'circuit breaker opened: no calls to this provider until a probe succeeds',
        }),
      ]),
    );
  });

  it('refuses a log option it cannot use, naming what is allowed', async () => {
    await expect(createClient({ registry: 'shuttle://127.0.0.1:1', log: { level: 'loud' as never }, config: false })).rejects.toThrow(
      /invalid log\.level: "loud" \(allowed: trace, debug, info, warn, error, fatal, silent\)/,
    );
    await expect(createClient({ registry: 'shuttle://127.0.0.1:1', log: { colour: true } as never, config: false })).rejects.toThrow(
      /invalid log\.colour: true \(allowed: only level and stream\)/,
    );
  });
});
