import type { Invocation } from '../../src/call/invocation.js';
import type { ServiceInstance } from '../../src/registry/registry.js';
import type { Serializer } from '../../src/serializer/serializer.js';
import type { ClientStream } from '../../src/transport/client-stream.js';
import type { ClientConnection, ConnectOptions, ConnectionState, Transport } from '../../src/transport/transport.js';

/**
 * A consumer connection that sends nothing: it records what it is asked to do and answers
 * with `answer` / `openAnswer`, which a test replaces to make calls fail, hang or stream.
 */
export class FakeConnection implements ClientConnection {
  state: ConnectionState = 'idle';
  goingAway = false;
  inFlight = 0;
  /** Every invocation passed to `invoke` or `openStream`, in order. */
  readonly sent: Invocation[] = [];
  /** The options of every `close` call. */
  readonly closes: Array<{ graceful?: boolean; timeoutMs?: number } | undefined> = [];
  /** Answers a unary call; by default with its request. */
  answer: (invocation: Invocation) => Promise<unknown> = (invocation) => Promise.resolve(invocation.request);
  /** Opens a stream; by default refuses, as a connection without streams would. */
  openAnswer: (invocation: Invocation) => Promise<ClientStream> = () => Promise.reject(new Error('this fake connection opens no streams'));
  /** What `close` returns; a test holds it open to see who waits for it. */
  closing: Promise<void> = Promise.resolve();

  constructor(readonly address: string) {}

  invoke(invocation: Invocation, _serializer: Serializer): Promise<unknown> {
    this.sent.push(invocation);
    return this.answer(invocation);
  }

  openStream(invocation: Invocation, _serializer: Serializer): Promise<ClientStream> {
    this.sent.push(invocation);
    return this.openAnswer(invocation);
  }

  close(options?: { graceful?: boolean; timeoutMs?: number }): Promise<void> {
    this.closes.push(options);
    this.state = 'shutdown';
    return this.closing;
  }
}

/** A transport whose connections are {@link FakeConnection}s, remembering every connect. */
/** Connect options for pools over a fake transport (nothing dials, so only their shape matters). */
export const FAKE_CONNECT_OPTIONS: ConnectOptions = {
  connectTimeoutMs: 1000,
  heartbeatIntervalMs: 10_000,
  heartbeatTimeoutMs: 5000,
  maxFrameBytes: 1 << 20,
  backoff: { initialMs: 100, maxMs: 1000, multiplier: 2, jitter: 0.2 },
  streamWindowBytes: 1 << 16,
  maxUnsentBytes: 1 << 20,
};

export interface FakeTransport extends Transport {
  /** Every `connect` call, in order, with the connection it returned. */
  readonly connects: Array<{ host: string; port: number; options: ConnectOptions; connection: FakeConnection }>;
  /** The connection most recently made to `host:port`. */
  connection(address: string): FakeConnection | undefined;
}

export function fakeTransport(name = 'tcp'): FakeTransport {
  const connects: FakeTransport['connects'] = [];
  return {
    name,
    connects,
    listen: () => Promise.reject(new Error('a fake transport does not listen')),
    connect(host, port, options) {
      const connection = new FakeConnection(`${host}:${port}`);
      connects.push({ host, port, options, connection });
      return connection;
    },
    connection: (address) => connects.findLast((made) => made.connection.address === address)?.connection,
  };
}

/** A stand-in serializer: the fake connections never encode. */
export const NO_SERIALIZER: Serializer = {
  id: 0,
  name: 'none',
  encode: () => {
    throw new Error('not used by fake connections');
  },
  decode: () => {
    throw new Error('not used by fake connections');
  },
};

/** A provider record of `service` on 10.0.0.1:`port` (tcp), with `overrides`. */
export function providerRecord(port: number, overrides: Partial<ServiceInstance> = {}): ServiceInstance {
  return {
    service: 'test.Echo',
    version: '1.0.0',
    group: '',
    host: '10.0.0.1',
    port,
    protocol: 'tcp',
    serializers: ['msgpack'],
    methods: [
      { name: 'echo', stream: false, idempotent: true },
      { name: 'write', stream: false, idempotent: false },
      { name: 'count', stream: true, idempotent: false },
    ],
    weight: 100,
    startTime: 0,
    metadata: {},
    ...overrides,
  };
}
