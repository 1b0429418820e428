import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { createClient, createServer } from 'shuttle-rpc';
import { loadConfig } from '../../../src/config/config.js';
import { EchoService } from '../../fixtures/services.js';
import { freePort } from '../../helpers/ports.js';
import { tempDir } from '../../helpers/tmp.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0)) await cleanup();
});
async function dirWith(files: Record<string, string>): Promise<string> {
  const tmp = await tempDir(files);
  cleanups.push(tmp.remove);
  return tmp.dir;
}

describe('loadConfig', () => {
  it('reads shuttle.config.json, then lets SHUTTLE_* variables win', async () => {
    const cwd = await dirWith({
      'shuttle.config.json': JSON.stringify({
        registry: 'memory://from-file',
        plugins: ['./p.js', 'pkg'],
        server: { port: 1234, weight: 5 },
        client: { timeoutMs: 100 },
      }),
    });
    const fromFile = await loadConfig({ cwd, env: {} });
    expect(fromFile.registry).toBe('memory://from-file');
    expect(fromFile.plugins).toEqual([`${cwd}/p.js`, 'pkg']);
    expect(fromFile.server).toEqual({ port: 1234, weight: 5 });
    expect(fromFile.client).toEqual({ timeoutMs: 100 });
    const withEnv = await loadConfig({
      cwd,
      env: { SHUTTLE_PORT: '4321', SHUTTLE_TOKEN: 't', SHUTTLE_TIMEOUT_MS: '250', SHUTTLE_REGISTRY: 'memory://env', SHUTTLE_PLUGINS: 'a, b' },
    });
    expect(withEnv.server).toEqual({ port: 4321, weight: 5, token: 't' });
    expect(withEnv.client).toEqual({ timeoutMs: 250, token: 't' });
    expect(withEnv.registry).toBe('memory://env');
    expect(withEnv.plugins).toEqual(['a', 'b']);
  });

  it('lets SHUTTLE_REGISTRY and SHUTTLE_PLUGINS win over a registry or plugins in the file’s server and client sections', async () => {
    const cwd = await dirWith({
      'shuttle.config.json': JSON.stringify({ server: { registry: 'memory://server-file', plugins: ['x'] }, client: { registry: 'memory://client-file' } }),
    });
    const config = await loadConfig({ cwd, env: { SHUTTLE_REGISTRY: 'memory://env', SHUTTLE_PLUGINS: 'a' } });
    const server = { registry: config.registry, plugins: config.plugins, ...config.server };
    const client = { registry: config.registry, ...config.client };
    expect([server.registry, server.plugins, client.registry]).toEqual(['memory://env', ['a'], 'memory://env']);
    // Without the variables the file's sections apply.
    const fileOnly = await loadConfig({ cwd, env: {} });
    expect({ registry: fileOnly.registry, ...fileOnly.server }.registry).toBe('memory://server-file');
  });

  it('reads shuttle.config.js exporting an object or a function, and SHUTTLE_CONFIG', async () => {
    const cwd = await dirWith({
      'shuttle.config.js': 'export default () => ({ client: { loadbalance: "random" } });',
      'other.json': '{ "server": { "host": "127.0.0.2" } }',
    });
    expect((await loadConfig({ cwd, env: {} })).client).toEqual({ loadbalance: 'random' });
    expect((await loadConfig({ cwd, env: { SHUTTLE_CONFIG: 'other.json' } })).server).toEqual({ host: '127.0.0.2' });
  });

  it('takes variables without the whitespace around them, and a blank one as unset', async () => {
    const cwd = await dirWith({ 'settings.json': '{ "client": { "cluster": "failfast" } }' });
    const config = await loadConfig({
      cwd,
      env: {
        SHUTTLE_TOKEN: 'secret\n', // as a Kubernetes secret or `echo secret > file` holds it
        SHUTTLE_REGISTRY: ' memory://env ',
        SHUTTLE_LOADBALANCE: 'p2c\t',
        SHUTTLE_PORT: ' 4321 ',
        SHUTTLE_TIMEOUT_MS: '   ',
        SHUTTLE_CONFIG: ' settings.json\n',
      },
    });
    expect(config.registry).toBe('memory://env');
    expect(config.server).toEqual({ token: 'secret', port: 4321 });
    expect(config.client).toEqual({ cluster: 'failfast', token: 'secret', loadbalance: 'p2c' });
  });

  it('says that JSON has no comments when a config file has them', async () => {
    const cwd = await dirWith({ 'shuttle.config.json': '{\n  // the cluster\n  "registry": "memory://x"\n}' });
    await expect(loadConfig({ cwd, env: {} })).rejects.toThrow(/is not valid JSON: .*\(JSON has no comments: remove them, or write shuttle\.config\.js/);
  });

  it('reads nothing when there is no file and no variable', async () => {
    const cwd = await dirWith({});
    expect(await loadConfig({ cwd, env: {} })).toEqual({ server: {}, client: {}, file: undefined, origins: { top: {}, server: {}, client: {} } });
  });

  it('names the file, key or variable of every malformed input', async () => {
    const bad = async (files: Record<string, string>, env: Record<string, string> = {}) => loadConfig({ cwd: await dirWith(files), env });
    await expect(bad({ 'shuttle.config.json': '{ nope' })).rejects.toThrow(/config file .*shuttle\.config\.json is not valid JSON/);
    await expect(bad({ 'shuttle.config.json': '[]' })).rejects.toThrow(/must hold an object, got array\(0\)/);
    await expect(bad({ 'shuttle.config.json': '{ "sever": {} }' })).rejects.toThrow(
      /unknown key "sever" in config file .* \(known: registry, plugins, server, client\)/,
    );
    await expect(bad({ 'shuttle.config.json': '{ "plugins": "x" }' })).rejects.toThrow(/invalid plugins in .*: "x" \(allowed: an array of module paths/);
    await expect(bad({ 'shuttle.config.json': '{ "client": 5 }' })).rejects.toThrow(/invalid client in .*: 5 \(allowed: an object of options\)/);
    await expect(bad({ 'shuttle.config.js': 'throw new Error("boom")' })).rejects.toThrow(/config file .*shuttle\.config\.js could not be loaded: boom/);
    await expect(bad({}, { SHUTTLE_PORT: 'eighty' })).rejects.toThrow('shuttle-rpc: invalid SHUTTLE_PORT: "eighty" (allowed: a decimal integer)');
    await expect(bad({}, { SHUTTLE_CONFIG: 'missing.json' })).rejects.toThrow(/cannot read config file .*missing\.json/);
  });

  it('refuses a SHUTTLE_* variable it does not read, naming the known one it is nearest to', async () => {
    const cwd = await dirWith({});
    await expect(loadConfig({ cwd, env: { SHUTTLE_REGISTERY: 'etcd://10.0.0.1:2379' } })).rejects.toThrow(
      /^shuttle-rpc: unknown environment variable SHUTTLE_REGISTERY \(did you mean SHUTTLE_REGISTRY\?\); shuttle-rpc reads SHUTTLE_CONFIG, SHUTTLE_REGISTRY, .*SHUTTLE_LOG_LEVEL$/,
    );
    await expect(loadConfig({ cwd, env: { SHUTTLE_TIMEOUT: '5000' } })).rejects.toThrow(
      /unknown environment variable SHUTTLE_TIMEOUT \(did you mean SHUTTLE_TIMEOUT_MS\?\)/,
    );
    await expect(loadConfig({ cwd, env: { SHUTTLE_COLOUR: 'blue' } })).rejects.toThrow(/unknown environment variable SHUTTLE_COLOUR; shuttle-rpc reads/);
    // Known names, unset or blank ones, and other programs' variables are no concern of it.
    const config = await loadConfig({ cwd, env: { SHUTTLE_LOG_LEVEL: 'warn', SHUTTLE_PORT: '8', SHUTTLE_OTHER: '  ', SHUTTLE: 'x', PATH: '/bin' } });
    expect(config.server).toEqual({ port: 8 });
    await expect(createServer({ services: [new EchoService()], config: { cwd, env: { SHUTTLE_PROT: '8080' } } })).rejects.toThrow(
      /unknown environment variable SHUTTLE_PROT \(did you mean SHUTTLE_PORT\?\)/,
    );
  });
});

describe('configuration precedence in createServer', () => {
  it('takes defaults < file < environment < code, and validates the merged values by key', async () => {
    const cwd = await dirWith({ 'shuttle.config.json': JSON.stringify({ server: { weight: 7, metadata: { zone: 'file' } } }) });
    const fromFile = await createServer({ services: [new EchoService()], config: { cwd, env: {} } });
    expect(fromFile.instances[0]?.weight).toBe(7);
    expect(fromFile.instances[0]?.metadata).toEqual({ zone: 'file' });
    await fromFile.close();

    const fromEnv = await createServer({ services: [new EchoService()], config: { cwd, env: { SHUTTLE_WEIGHT: '9' } } });
    expect(fromEnv.instances[0]?.weight).toBe(9);
    await fromEnv.close();

    const fromCode = await createServer({ services: [new EchoService()], weight: 11, config: { cwd, env: { SHUTTLE_WEIGHT: '9' } } });
    expect(fromCode.instances[0]?.weight).toBe(11);
    await fromCode.close();

    await expect(createServer({ services: [new EchoService()], config: { cwd, env: { SHUTTLE_WEIGHT: '-3' } } })).rejects.toThrow(
      'shuttle-rpc: invalid weight: -3 (allowed: an integer from 1 to 10000)',
    );
    const typo = await dirWith({ 'shuttle.config.json': JSON.stringify({ server: { prot: 80 } }) });
    await expect(createServer({ services: [new EchoService()], config: { cwd: typo, env: {} } })).rejects.toThrow(/unknown option server config in .*\.prot/);
    await expect(createServer({ services: [new EchoService()], registry: 'not a url', config: false })).rejects.toThrow(
      /invalid registry: "not a url" \(allowed: a URL whose scheme is a registered registry/,
    );
  });

  it('names the environment variable or config file that set a refused value, and nothing when code set it', async () => {
    const services = [new EchoService()];
    await expect(createServer({ services, registry: false, config: { env: { SHUTTLE_WEIGHT: '-3' } } })).rejects.toThrow(
      'shuttle-rpc: invalid weight: -3 (allowed: an integer from 1 to 10000) (set by SHUTTLE_WEIGHT)',
    );
    await expect(createClient({ config: { env: { SHUTTLE_REGISTRY: 'bogus://x' } } })).rejects.toThrow(
      /invalid registry: "bogus:\/\/x" .*\(set by SHUTTLE_REGISTRY\)$/,
    );
    await expect(createClient({ registry: 'memory://t', config: { env: { SHUTTLE_LOADBALANCE: 'nope' } } })).rejects.toThrow(
      /invalid loadbalance: "nope" .*\(set by SHUTTLE_LOADBALANCE\)$/,
    );
    const cwd = await dirWith({ 'shuttle.config.json': JSON.stringify({ client: { connectTimeoutMs: -1 } }) });
    await expect(createClient({ registry: 'memory://t', config: { cwd, env: {} } })).rejects.toThrow(
      `invalid connectTimeoutMs: -1 (allowed: an integer from 1 to 2147483647) (set by config file ${cwd}/shuttle.config.json)`,
    );
    // The code's own value is the one refused: no origin to name.
    const refused = createServer({ services, registry: false, weight: -4, config: { env: { SHUTTLE_WEIGHT: '-3' } } });
    await expect(refused).rejects.toThrow(/invalid weight: -4 \(allowed: an integer from 1 to 10000\)$/);
    // A log level from SHUTTLE_LOG_LEVEL (read by the logger itself) is named as the variable.
    const before = process.env['SHUTTLE_LOG_LEVEL'];
    process.env['SHUTTLE_LOG_LEVEL'] = 'loud';
    try {
      await expect(createClient({ registry: 'memory://t', config: false })).rejects.toThrow(/invalid SHUTTLE_LOG_LEVEL: "loud"/);
      process.env['SHUTTLE_LOG_LEVEL'] = 'warn\n'; // as a secret or an env file may hold it
      const client = await createClient({ registry: 'memory://t', config: false });
      await client.close();
    } finally {
      if (before === undefined) delete process.env['SHUTTLE_LOG_LEVEL'];
      else process.env['SHUTTLE_LOG_LEVEL'] = before;
    }
  });

  it('says what to do when its port is taken: another process listens there, choose another or 0', async () => {
    const taken = net.createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const port = (taken.address() as net.AddressInfo).port;
    try {
      await expect(createServer({ services: [new EchoService()], port, registry: false, config: false, log: false })).rejects.toThrow(
        `cannot listen on 127.0.0.1:${port}: another process listens there (EADDRINUSE); choose another port, or port 0 for any free one`,
      );
    } finally {
      await new Promise((resolve) => taken.close(resolve));
    }
  });

  it('refuses every bad option before it listens or registers anything', async () => {
    const port = await freePort();
    await expect(createServer({ services: [new EchoService()], port, registry: false, shutdownOnSignals: 'yes' as never, config: false })).rejects.toThrow(
      /invalid shutdownOnSignals: "yes" \(allowed: true or false\)/,
    );
    // Nothing was left listening on the port.
    const server = await createServer({ services: [new EchoService()], port, registry: false, config: false });
    expect(server.port).toBe(port);
    await server.close();
  });
});
