import http2 from 'node:http2';
import grpc from '@grpc/grpc-js';
import { RpcCode, RpcError } from '../../errors/errors.js';
import { errorToStatus } from './status.js';
import { fromWallTime, monotonicNow } from '../../common/clock.js';

/**
 * What a call costs beyond its request message: the provider's own objects for it, its headers
 * twice (grpc-js's copy and the call metadata) and 64 bytes an entry, as the tcp transport
 * prices a call (50,000 sleeping calls had cost 160 MB there before calls were priced).
 */
const CALL_BYTES = 1536;
const BYTES_PER_ENTRY = 64;

/**
 * Calls of one connection reading their request at once. grpc-js reads a call's message whole
 * (up to maxFrameBytes, inflated when compressed) before anything sees it, so every read is a
 * message that may cost maxFrameBytes before it can be priced: four bound that per connection,
 * and still let a client that sends many small calls at once have them read in one turn.
 */
const READS_PER_CONNECTION = 4;

/** A request at most this large may run as its connection's only one even past the server's budget (as on tcp): every connection can make progress. */
const SMALL_MESSAGE_BYTES = 64 * 1024;

/** How often reads are checked against the read timeout (one timer per server, not one per call). */
const SWEEP_EVERY_MS = 500;

/** What one connection (by grpc-js's peer name) holds. */
interface Account {
  readonly peer: string;
  /** Priced bytes of its calls: heads of every call, messages of the calls that got theirs. */
  held: number;
  /** Calls whose read has started and whose message has not arrived. */
  reading: number;
  /** Calls holding a message. */
  messages: number;
  /** Calls not yet priced out (for forgetting the account). */
  calls: number;
  /** Bytes reserved for the messages of its reads under way. */
  reserved: number;
  /** Its last message was refused for the server's budget: its next read waits for room. */
  waitForRoom: boolean;
  /** Calls waiting for their read to start, in arrival order. */
  readonly waiting: BudgetedCall[];
}

/** The limits a {@link RequestBudget} enforces. */
export interface RequestBudgetLimits {
  /** Bytes the calls of one connection may hold (`maxDecodedBytesPerConnection`). */
  readonly perConnection: number;
  /** Bytes the calls of all connections may hold (`maxTotalDecodedBytes`). */
  readonly total: number;
  /** A request message's largest size, inflated (`maxFrameBytes`). */
  readonly maxMessageBytes: number;
  /** How long a started read may take to bring its whole message (`frameTimeoutMs`). */
  readonly readTimeoutMs: number;
}

/**
 * The request bytes the calls of a grpc server hold — each call's headers from its arrival, its
 * message (after decompression) from its arrival until the call ends — per connection and for
 * the whole server, enforced through a grpc-js server interceptor (which also refuses compressed
 * requests before they are read, see compressedRefusal):
 *
 * 1. backpressure: a call's message is not read while its connection holds its budget, has
 *    {@link READS_PER_CONNECTION} reads under way, or the server holds its own; its HTTP/2
 *    stream stays paused, so the peer's bytes wait in its flow-control window (64 KiB);
 * 2. a clear error: a call arriving on a connection that holds its budget (with other calls), or
 *    a message that arrives past a budget (unless it is small and its connection's only one), is
 *    answered RESOURCE_EXHAUSTED naming the limit, never run (safe to retry); a read not whole
 *    within `readTimeoutMs` is ended the same way;
 * 3. a refused call's HTTP/2 stream is reset; when a call ends its bytes are given back and
 *    waiting reads start in arrival order.
 *
 * Without it grpc-js read every call's message as it came: 100 gzip requests of 8 KB inflating to
 * 8 MB each, held by handlers that wait, took a provider from 95 MB to 1.6 GB, and 100 streams
 * each sending 7.5 MB of a message and stopping held 760 MB with no timeout.
 */
export class RequestBudget {
  readonly limits: RequestBudgetLimits;
  #used = 0;
  readonly #accounts = new Map<string, Account>();
  /** Connections whose first waiting call waits for the server's budget, in the order they began to wait. */
  readonly #blocked = new Set<Account>();
  /** Calls whose read has started, with when it started (insertion order is start order). */
  readonly #reads = new Map<BudgetedCall, { readonly startedAt: number; readonly reserved: number }>();
  /** Bytes reserved for the messages of reads under way (their connection's turn excepted). */
  #reserved = 0;
  #sweeper: NodeJS.Timeout | undefined;
  /** Calls' monotonic deadlines by their request metadata (gone with the call). */
  readonly #deadlines = new WeakMap<grpc.Metadata, number>();

  constructor(limits: RequestBudgetLimits) {
    this.limits = limits;
  }

  /** Bytes held now by every call together. */
  get used(): number {
    return this.#used;
  }

  /** The grpc-js server interceptor that applies this budget to every call. */
  interceptor(): grpc.ServerInterceptor {
    return (method, next) => new BudgetedCall(next, this, method.requestStream);
  }

  /**
   * The deadline, on the `monotonicNow()` clock, of the call whose request `metadata` is, as
   * read the moment grpc-js stated it; undefined when it has none or did not pass through
   * {@link interceptor}.
   */
  deadlineOf(metadata: grpc.Metadata): number | undefined {
    return this.#deadlines.get(metadata);
  }

  /** @internal Records a call's monotonic deadline for {@link deadlineOf}. */
  noteDeadline(metadata: grpc.Metadata, deadline: number): void {
    this.#deadlines.set(metadata, deadline);
  }

  /** @internal The account of `peer`, created with its first call. */
  account(peer: string): Account {
    let account = this.#accounts.get(peer);
    if (account === undefined) {
      account = { peer, held: 0, reading: 0, messages: 0, calls: 0, reserved: 0, waitForRoom: false, waiting: [] };
      this.#accounts.set(peer, account);
    }
    account.calls++;
    return account;
  }

  /** @internal Adds `bytes` to what `account` and the server hold. */
  charge(account: Account, bytes: number): void {
    account.held += bytes;
    this.#used += bytes;
  }

  /** @internal Whether `account` or the server holds more than its budget. */
  over(account: Account): 'perConnection' | 'total' | undefined {
    if (account.held > this.limits.perConnection) return 'perConnection';
    if (this.#used > this.limits.total) return 'total';
    return undefined;
  }

  /** @internal Starts `call`'s read now if the budgets allow it, else queues it. */
  requestRead(call: BudgetedCall): void {
    const { account } = call;
    account.waiting.push(call);
    if (account.waiting.length === 1) this.#pump(account);
  }

  /** @internal The read of `call` brought its message, or ended: its reservation is given back. */
  readDone(call: BudgetedCall): void {
    const read = this.#reads.get(call);
    if (read === undefined) return;
    this.#reads.delete(call);
    call.account.reading--;
    call.account.reserved -= read.reserved;
    this.#reserved -= read.reserved;
    if (this.#reads.size === 0) this.#stopSweeper();
  }

  /** @internal Gives back what `call` held and starts the reads that now fit. */
  release(call: BudgetedCall, bytes: number, hadMessage: boolean): void {
    const { account } = call;
    this.readDone(call);
    const at = account.waiting.indexOf(call);
    if (at >= 0) account.waiting.splice(at, 1);
    account.held -= bytes;
    this.#used -= bytes;
    if (hadMessage) account.messages--;
    if (--account.calls === 0) {
      this.#accounts.delete(account.peer);
      this.#blocked.delete(account);
      return this.#wakeBlocked();
    }
    this.#pump(account);
    this.#wakeBlocked();
  }

  /** @internal A read of `account` ended (its reservation given back): start what now fits. */
  wake(account: Account): void {
    this.#pump(account);
    this.#wakeBlocked();
  }

  #wakeBlocked(): void {
    for (const account of this.#blocked) {
      if (this.#used + this.#reserved + this.limits.maxMessageBytes > this.limits.total) return;
      this.#pump(account);
    }
  }

  /**
   * Starts the waiting reads of `account` that fit, in order. A connection with nothing read
   * or reading always gets one read (its turn, so that every connection makes progress), unless
   * its last message was refused for the server's budget: then it waits for room like the rest.
   * Other reads reserve a whole message (maxMessageBytes), per connection and server-wide, until
   * theirs arrives: the budgets then hold at most one unpriced message per connection.
   */
  #pump(account: Account): void {
    const { limits } = this;
    while (account.waiting.length > 0) {
      const turn = account.reading === 0 && account.messages === 0 && !account.waitForRoom;
      let reserve = 0;
      if (!turn) {
        if (account.reading >= READS_PER_CONNECTION || account.held + account.reserved + limits.maxMessageBytes > limits.perConnection) {
          this.#blocked.delete(account);
          return;
        }
        if (this.#used + this.#reserved + limits.maxMessageBytes > limits.total) {
          this.#blocked.add(account);
          return;
        }
        reserve = limits.maxMessageBytes;
        account.waitForRoom = false;
      }
      this.#blocked.delete(account);
      const call = account.waiting.shift()!;
      // Past its deadline (grpc-js ends it in a moment): reading its message would only let the
      // peer send bytes nobody will use.
      if (call.expired()) continue;
      account.reading++;
      account.reserved += reserve;
      this.#reserved += reserve;
      this.#reads.set(call, { startedAt: performance.now(), reserved: reserve });
      this.#sweeper ??= setInterval(() => this.#sweep(), SWEEP_EVERY_MS).unref();
      call.read();
    }
    this.#blocked.delete(account);
  }

  /** Ends the reads older than the read timeout (oldest first: the map is in start order). */
  #sweep(): void {
    const expired = performance.now() - this.limits.readTimeoutMs;
    for (const [call, { startedAt }] of this.#reads) {
      if (startedAt > expired) return;
      call.refuse(`the request message was not whole within frameTimeoutMs (${this.limits.readTimeoutMs} ms) of its read starting`);
    }
  }

  #stopSweeper(): void {
    clearInterval(this.#sweeper);
    this.#sweeper = undefined;
  }
}

/** One call under the budget: a grpc-js intercepting call whose first read waits for room. */
class BudgetedCall extends grpc.ServerInterceptingCall {
  readonly account: Account;
  readonly #budget: RequestBudget;
  /** Bytes this call holds. */
  #bytes = 0;
  #hasMessage = false;
  #readAsked = false;
  /** The call's deadline on the monotonic clock, read when its metadata arrived. */
  #deadline = Number.POSITIVE_INFINITY;
  readonly #stream: http2.Http2Stream | undefined;
  /** The request's grpc-encoding (`identity` when it has none). */
  readonly #encoding: string;
  #ended = false;

  constructor(next: grpc.ServerInterceptingCallInterface, budget: RequestBudget, requestStream: boolean) {
    super(next, {
      start: (startNext) =>
        startNext({
          onReceiveMetadata: (metadata, pass) => {
            // grpc-js has just stated the deadline on the wall clock (now + grpc-timeout): it is
            // put on the monotonic clock at once, before a step of the wall clock can come
            // between, for the read budget and for the call itself.
            const wallDeadline = Number(this.getDeadline());
            if (Number.isFinite(wallDeadline)) {
              this.#deadline = fromWallTime(wallDeadline);
              budget.noteDeadline(metadata, this.#deadline);
            }
            this.#take(headBytes(metadata));
            if (this.#encoding !== 'identity') return this.refuse(compressedRefusal(this.#encoding), RpcCode.UNIMPLEMENTED);
            const over = this.account.calls > 1 ? budget.over(this.account) : undefined;
            if (over !== undefined) return this.refuse(refusal(over, budget.limits));
            pass(metadata);
          },
          onReceiveMessage: (message: Buffer, pass) => {
            if (this.#hasMessage) {
              // Client streams (server reflection) read on: priced by their first message.
              if (requestStream) return pass(message);
              // grpc-js answers a second message of a unary or server-streaming call and keeps
              // the stream, with every message it parsed from the same read, for as long as the
              // peer keeps it open: 60 KB of empty messages on each of 5,000 streams held 770 MB
              // and a core for 5 s. The stream is reset instead.
              return this.refuse('a unary or server-streaming call carries one request message', RpcCode.INVALID_ARGUMENT);
            }
            budget.readDone(this);
            this.#hasMessage = true;
            this.account.messages++;
            this.#take(message.length);
            const over = budget.over(this.account);
            // A small message alone on its connection runs whatever the server holds.
            if (over !== undefined && (this.account.messages > 1 || message.length > SMALL_MESSAGE_BYTES || over === 'perConnection')) {
              if (over === 'total') this.account.waitForRoom = true;
              return this.refuse(refusal(over, budget.limits));
            }
            pass(message);
            budget.wake(this.account);
          },
          onCancel: () => this.#end(),
        }),
      sendStatus: (status, pass) => {
        this.#end();
        pass(status);
      },
    });
    this.#budget = budget;
    this.account = budget.account(next.getPeer());
    const internals = internalsOf(next);
    this.#stream = internals.stream;
    this.#encoding = internals.encoding;
  }

  /** The first read waits for the budget; later ones (the half-close of a unary call) do not. */
  override startRead(): void {
    if (this.#ended) return;
    if (this.#readAsked) return super.startRead();
    this.#readAsked = true;
    this.#budget.requestRead(this);
  }

  /** @internal Whether the call's deadline has passed. */
  expired(): boolean {
    return this.#deadline !== Number.POSITIVE_INFINITY && this.#deadline <= monotonicNow();
  }

  /** @internal Called by the budget when this call may read. */
  read(): void {
    super.startRead();
  }

  /**
   * Ends the call RESOURCE_EXHAUSTED, never run (safe to retry), and resets its HTTP/2 stream:
   * grpc-js answers and then keeps the stream open for as long as the peer does, and with it
   * the part of the message it had read (a peer that never finished its 8 MB messages kept
   * 7.5 MB for each of its refused calls).
   */
  refuse(message: string, code: RpcCode = RpcCode.RESOURCE_EXHAUSTED): void {
    if (this.#ended) return;
    const status = errorToStatus(new RpcError(code, message, { details: { neverSent: true } }));
    // gRPC's answer to an encoding the server does not take: the ones it does (a client then
    // sends its next calls uncompressed).
    if (code === RpcCode.UNIMPLEMENTED) status.metadata!.set('grpc-accept-encoding', 'identity');
    this.sendStatus(status as grpc.StatusObject);
    this.#stream?.close(http2.constants.NGHTTP2_NO_ERROR);
  }

  #take(bytes: number): void {
    this.#bytes += bytes;
    this.#budget.charge(this.account, bytes);
  }

  #end(): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#budget.release(this, this.#bytes, this.#hasMessage);
  }
}

/**
 * What grpc-js 1.14 keeps on its own call (BaseServerInterceptingCall; this interceptor is the
 * first, so `call` is that one) and offers no public way to read: the HTTP/2 stream, to reset a
 * refused call's stream, and the request's grpc-encoding, to refuse compressed requests before
 * grpc-js inflates them. test/unit/transport/grpc-request-budget.test.ts pins both against the
 * installed grpc-js. Should it rename them, refused calls' streams end when their peers end them
 * and compressed requests are inflated as grpc-js does by default.
 * @internal
 */
export function internalsOf(call: grpc.ServerInterceptingCallInterface): { stream: http2.Http2Stream | undefined; encoding: string } {
  const { stream, incomingEncoding } = call as unknown as { stream?: unknown; incomingEncoding?: unknown };
  return {
    stream:
      typeof stream === 'object' && stream !== null && typeof (stream as http2.Http2Stream).close === 'function' ? (stream as http2.Http2Stream) : undefined,
    encoding: typeof incomingEncoding === 'string' ? incomingEncoding : 'identity',
  };
}

/**
 * Compressed requests are refused before they are read: grpc-js inflates a message whole before
 * anything can price it, and goes on inflating after its call is cancelled, so 8 KB of gzip
 * cost up to maxFrameBytes (8 MiB) each — one such request on each of 100 connections took a
 * provider from 90 MB to 1.1 GB. Answers are never compressed either.
 */
function compressedRefusal(encoding: string): string {
  return `the provider takes uncompressed requests only (grpc-encoding ${JSON.stringify(encoding.slice(0, 40))} refused; grpc-accept-encoding: identity)`;
}

/** What a call's headers are priced at. */
function headBytes(metadata: grpc.Metadata): number {
  let bytes = CALL_BYTES;
  for (const [key, value] of Object.entries(metadata.getMap())) bytes += BYTES_PER_ENTRY + 2 * (key.length + value.length);
  return bytes;
}

function refusal(over: 'perConnection' | 'total', limits: RequestBudgetLimits): string {
  return over === 'perConnection'
    ? `the provider holds the requests of this connection's running calls up to its limit (maxDecodedBytesPerConnection ${limits.perConnection}); retry when they end`
    : `the provider holds the requests of its running calls up to its limit (maxTotalDecodedBytes ${limits.total}); retry when they end`;
}
