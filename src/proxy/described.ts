import type { ServiceDescriptor } from '../decorators/descriptor.js';
import { RpcCode, RpcError } from '../errors/errors.js';
import type { ClientStream } from '../transport/client-stream.js';
import type { CallOptions, MethodCaller, Proxied, StreamingCall } from './proxy.js';
import { followStream } from './call.js';

/*
 * The proxy of a service descriptor. Unlike the proxy of a bare name (proxy.ts), it knows each
 * method's kind before the first call, so nothing is inferred from how a call is used: a unary
 * method returns the caller's promise as it is, and a streaming method returns an iterable that
 * opens the stream when iteration starts, whenever that is. The method table is built once,
 * here; a call costs one closure call more than the caller itself.
 */

/**
 * Builds a frozen stub with one function per method of `descriptor` and nothing else (so it is
 * not thenable, and an undeclared name is undefined rather than a remote call).
 */
export function createDescribedProxy<T>(descriptor: ServiceDescriptor<T>, caller: MethodCaller): Proxied<T> {
  const stub: Record<string, unknown> = Object.create(null);
  for (const [method, { kind }] of Object.entries(descriptor.methods)) {
    const label = `${descriptor.name}.${method}`;
    stub[method] =
      kind === 'unary'
        ? (request?: unknown, options?: CallOptions) => caller(method, request, options, 'unary')
        : (request?: unknown, options?: CallOptions) => createStreamCall(() => caller(method, request, options, 'stream') as Promise<ClientStream>, label);
  }
  return Object.freeze(stub) as Proxied<T>;
}

/**
 * A server-streaming call that sends its request when it is first iterated (its timeout counts
 * from then). `trailer` is the provider generator's return value once iteration has started;
 * before that it rejects FAILED_PRECONDITION, as nothing was sent.
 */
function createStreamCall(open: () => Promise<ClientStream>, label: string): StreamingCall<unknown> {
  let opened: Promise<ClientStream> | undefined;
  const call = {
    trailer: NOT_ITERATED,
    [Symbol.asyncIterator](): AsyncIterator<unknown> {
      if (opened !== undefined) throw new RpcError(RpcCode.FAILED_PRECONDITION, `${label}: a stream can be iterated only once`);
      const opening = followStream((opened = open()));
      call.trailer = opening.trailer;
      return opening.iterator;
    },
  };
  return call;
}

/** The trailer of a streaming call not iterated yet: one shared, already-handled rejection. */
const NOT_ITERATED: Promise<unknown> = Promise.reject(new RpcError(RpcCode.FAILED_PRECONDITION, 'trailer is only available once the stream is iterated'));
NOT_ITERATED.catch(() => {});
