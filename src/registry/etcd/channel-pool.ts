import * as grpc from '@grpc/grpc-js';

/**
 * One long-lived gRPC channel per etcd host, shared by every service client the etcd3 client
 * makes, and closed only by {@link EtcdChannelPool.close}.
 *
 * Why: on every "recoverable" error the etcd3 client closes all its service clients and makes
 * new ones — one new channel per failed call during an outage. grpc-js (1.14) has a bug there:
 * a channel closed while its subchannel waits out a reconnect backoff leaves that subchannel
 * unowned, and when the backoff timer fires it connects anyway; once etcd is back, every such
 * orphan holds an idle connection to etcd forever (a dozen after one restart, still open after
 * the registry closed). Sharing one channel stops the churn: the clients etcd3 closes only
 * borrow the channel, so nothing is orphaned, and the one channel reconnects on its own with
 * the backoff set in {@link RECONNECT_OPTIONS} — as a gRPC client normally does.
 */
export class EtcdChannelPool {
  readonly #channels = new Map<string, grpc.Channel>();
  #closed = false;

  /** Channel options for the etcd3 client (`grpcOptions`): the pool's factory plus reconnect pacing. */
  channelOptions(): grpc.ChannelOptions {
    return { ...RECONNECT_OPTIONS, channelFactoryOverride: this.#borrow } as grpc.ChannelOptions;
  }

  /** Closes every channel; later borrowers get a channel that is already closed. */
  close(): void {
    this.#closed = true;
    for (const channel of this.#channels.values()) channel.close();
    this.#channels.clear();
  }

  readonly #borrow = (address: string, credentials: grpc.ChannelCredentials, options: grpc.ChannelOptions): grpc.ChannelInterface => {
    let channel = this.#channels.get(address);
    if (channel === undefined) {
      channel = new grpc.Channel(address, credentials, options);
      if (this.#closed) channel.close();
      else this.#channels.set(address, channel);
    }
    return new BorrowedChannel(channel);
  };
}

/**
 * Reconnect within 100 ms, backing off to at most 1 s (grpc-js defaults to 1 s growing to
 * 120 s — far too slow to notice that the registry came back; it matches the watch backoff).
 */
const RECONNECT_OPTIONS = {
  'grpc.initial_reconnect_backoff_ms': 100,
  'grpc.min_reconnect_backoff_ms': 100,
  'grpc.max_reconnect_backoff_ms': 1_000,
} as const;

/** A shared channel as one client sees it: everything but `close` goes to the real channel. */
class BorrowedChannel implements grpc.ChannelInterface {
  readonly #channel: grpc.Channel;

  constructor(channel: grpc.Channel) {
    this.#channel = channel;
  }

  /** A no-op: the pool owns the channel, clients only borrow it. */
  close(): void {}

  getTarget(): string {
    return this.#channel.getTarget();
  }

  getConnectivityState(tryToConnect: boolean): grpc.connectivityState {
    return this.#channel.getConnectivityState(tryToConnect);
  }

  watchConnectivityState(currentState: grpc.connectivityState, deadline: Date | number, callback: (error?: Error) => void): void {
    this.#channel.watchConnectivityState(currentState, deadline, callback);
  }

  getChannelzRef(): ReturnType<grpc.Channel['getChannelzRef']> {
    return this.#channel.getChannelzRef();
  }

  createCall(...args: Parameters<grpc.Channel['createCall']>): ReturnType<grpc.Channel['createCall']> {
    return this.#channel.createCall(...args);
  }
}
