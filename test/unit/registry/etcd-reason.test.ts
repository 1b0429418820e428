import { describe, expect, it } from 'vitest';
import { etcdReason } from '../../../src/registry/etcd/etcd-reason.js';

/* The messages below are what etcd3 1.1 over grpc-js 1.14 throws, copied from real failures. */
describe('etcdReason', () => {
  it('names the address and the socket error of a refused connection, without grpc-js wording', () => {
    const refused = new Error('14 UNAVAILABLE: No connection established. Last error: Error: connect ECONNREFUSED 127.0.0.1:23799. Resolution note: ');
    expect(etcdReason(refused, 3000)).toBe('cannot connect to 127.0.0.1:23799 (ECONNREFUSED: nothing listens there)');
  });

  it('says how long etcd was waited for when it does not answer (stalled etcd), not the client timings', () => {
    const stalled = new Error(
      '4 DEADLINE_EXCEEDED: Deadline exceeded after 3.029s,name resolution: 0.008s,metadata filters: 0.001s,time to current attempt start: 0.004s,Waiting for LB pick',
    );
    expect(etcdReason(stalled, 3000)).toBe('no answer within 3000 ms: etcd is stalled, overloaded or cut off');
    expect(etcdReason(new Error('timed out after 500 ms'), 500)).toBe('no answer within 500 ms: etcd is stalled, overloaded or cut off');
  });

  it('names an unresolvable host, a TLS mismatch, and keeps etcd’s own reasons', () => {
    expect(etcdReason(new Error('14 UNAVAILABLE: Name resolution failed for target dns:no-such-host.invalid:2379'), 3000)).toBe(
      'cannot resolve the host of no-such-host.invalid:2379',
    );
    const tls = new Error(
      '14 UNAVAILABLE: No connection established. Last error: Error: Client network socket disconnected before secure TLS connection was established. Resolution note: ',
    );
    expect(etcdReason(tls, 3000)).toBe('cannot connect: Client network socket disconnected before secure TLS connection was established');
    expect(etcdReason(new Error('9 FAILED_PRECONDITION: etcdserver: authentication is not enabled'), 3000)).toBe('etcdserver: authentication is not enabled');
    expect(etcdReason('odd', 3000)).toBe('odd');
  });
});
