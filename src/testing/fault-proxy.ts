import net from 'node:net';

/** A direction through the proxy: `up` is client → target, `down` target → client. */
export type FaultDirection = 'up' | 'down' | 'both';

/** What the proxy does to the bytes of one direction. */
export interface Fault {
  /** Hold every chunk this long before forwarding it (order kept). */
  delayMs?: number;
  /** Forward nothing until the fault is cleared (bytes are kept, then sent): a frozen peer. */
  stall?: boolean;
  /** Throw the bytes away: a black hole. */
  drop?: boolean;
}

/** A running fault proxy. */
export interface FaultProxy {
  readonly host: string;
  readonly port: number;
  /** `shuttle://host:port`, for a consumer's registry option. */
  readonly url: string;
  /** Connections currently relayed. */
  readonly connections: number;
  /** Applies `fault` to `direction` for current and future connections (replacing the last). */
  set(direction: FaultDirection, fault: Fault): void;
  /** Removes every fault; stalled bytes are sent on. */
  clear(): void;
  /** Cuts every current connection (both sockets destroyed, as a network failure would). */
  cut(): void;
  /**
   * A partition that refuses: cuts every current connection and, until {@link unblock},
   * closes each new one as soon as it is accepted, without dialling the target. Unlike a
   * `drop` fault, the peer learns at once that the connection is gone.
   */
  block(): void;
  /** Ends {@link block}: new connections are relayed again. */
  unblock(): void;
  /** Sends new connections to another target (a provider restarted on another port). */
  retarget(target: { host: string; port: number }): void;
  /** Stops listening and cuts every connection. */
  close(): Promise<void>;
}

interface Pipe {
  fault: Fault;
  readonly held: Buffer[];
  flush(): void;
}

/**
 * A TCP proxy on loopback for chaos tests: it relays to `target` and, on command, delays,
 * stalls or drops traffic per direction, cuts connections, or refuses them all (a partition).
 * In process, small, and deterministic enough to reason about; not a network emulator.
 */
export async function startFaultProxy(initialTarget: { host: string; port: number }): Promise<FaultProxy> {
  let target = initialTarget;
  let blocked = false;
  const faults: Record<'up' | 'down', Fault> = { up: {}, down: {} };
  const live = new Set<{ client: net.Socket; upstream: net.Socket; pipes: Record<'up' | 'down', Pipe> }>();

  const pipe = (from: net.Socket, to: net.Socket, direction: 'up' | 'down'): Pipe => {
    const state: Pipe = {
      fault: faults[direction],
      held: [],
      flush() {
        if (state.fault.stall === true) return;
        for (const chunk of state.held.splice(0)) forward(chunk);
      },
    };
    const forward = (chunk: Buffer): void => {
      const { delayMs, drop } = state.fault;
      if (drop === true) return;
      if (delayMs !== undefined && delayMs > 0) setTimeout(() => to.destroyed || to.write(chunk), delayMs);
      else if (!to.destroyed) to.write(chunk);
    };
    from.on('data', (chunk: Buffer) => {
      if (state.fault.stall === true || state.held.length > 0) {
        state.held.push(chunk);
        state.flush();
      } else forward(chunk);
    });
    return state;
  };

  const server = net.createServer((client) => {
    if (blocked) {
      client.destroy();
      return;
    }
    const upstream = net.connect({ host: target.host, port: target.port });
    const entry = { client, upstream, pipes: { up: pipe(client, upstream, 'up'), down: pipe(upstream, client, 'down') } };
    live.add(entry);
    const end = (): void => {
      live.delete(entry);
      client.destroy();
      upstream.destroy();
    };
    for (const socket of [client, upstream]) {
      socket.on('error', end);
      socket.on('close', end);
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;

  const cut = (): void => {
    for (const entry of [...live]) {
      entry.client.destroy();
      entry.upstream.destroy();
    }
  };

  const apply = (): void => {
    for (const entry of live) {
      for (const direction of ['up', 'down'] as const) {
        entry.pipes[direction].fault = faults[direction];
        entry.pipes[direction].flush();
      }
    }
  };

  return {
    host: '127.0.0.1',
    port,
    url: `shuttle://127.0.0.1:${port}`,
    get connections() {
      return live.size;
    },
    set(direction, fault) {
      if (direction !== 'down') faults.up = { ...fault };
      if (direction !== 'up') faults.down = { ...fault };
      apply();
    },
    clear() {
      faults.up = {};
      faults.down = {};
      apply();
    },
    cut,
    block() {
      blocked = true;
      cut();
    },
    unblock() {
      blocked = false;
    },
    retarget(next) {
      target = next;
    },
    close() {
      cut();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
