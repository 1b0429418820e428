/**
 * What went wrong with an etcd request, in the words an operator needs: the address that could
 * not be reached and why, or how long etcd was waited for. etcd3 passes on grpc-js messages
 * such as `14 UNAVAILABLE: No connection established. Last error: Error: connect ECONNREFUSED
 * 127.0.0.1:2379. Resolution note: ` or `4 DEADLINE_EXCEEDED: Deadline exceeded after 3.029s,
 * name resolution: 0.008s,…,Waiting for LB pick`: the status prefix and the client's own
 * timings say nothing about etcd, so they are cut; etcd's own reason (`etcdserver: …`) and
 * anything not recognised are kept as they are.
 */
export function etcdReason(error: unknown, requestTimeoutMs: number): string {
  const message = error instanceof Error ? error.message : String(error);
  const status = /^\d+ ([A-Z_]+): ?/.exec(message);
  const text = status === null ? message : message.slice(status[0].length);
  if (status?.[1] === 'DEADLINE_EXCEEDED' || /^timed out after/.test(text)) {
    return `no answer within ${requestTimeoutMs} ms: etcd is stalled, overloaded or cut off`;
  }
  const connect = /connect (E[A-Z]+) (\S+?)\.?(?: |$)/.exec(text);
  if (connect !== null) return `cannot connect to ${connect[2]} (${connect[1]}${connect[1] === 'ECONNREFUSED' ? ': nothing listens there' : ''})`;
  const name = /Name resolution failed for target (?:dns:)?(\S+)/.exec(text);
  if (name !== null) return `cannot resolve the host of ${name[1]}`;
  const last = /^No connection established\. Last error: (?:Error: )?(.*?)\.?(?: Resolution note: .*)?$/s.exec(text);
  if (last !== null) return `cannot connect: ${last[1]}`;
  return text;
}
