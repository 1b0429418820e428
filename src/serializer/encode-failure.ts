import { RpcCode, RpcError, thrownMessage } from '../errors/errors.js';
import type { PayloadTarget } from './serializer.js';

/**
 * The error of a value a serializer could not encode, naming the method, the payload and why.
 * A request that cannot be encoded is the caller's: INVALID_ARGUMENT, never sent. A response is
 * the provider's: INTERNAL.
 *
 * Why the reason is looked for only here: an encoder that overflows the stack on a value that
 * refers to itself says only "Maximum call stack size exceeded"; walking every value before
 * encoding it to find cycles would cost every call, so the walk runs once encoding has failed.
 */
export function encodeFailure(target: PayloadTarget, serializerName: string, value: unknown, cause: unknown): RpcError {
  const code = target.kind === 'request' ? RpcCode.INVALID_ARGUMENT : RpcCode.INTERNAL;
  let reason: string;
  // The value and what was thrown are user code's (a getter, a Proxy, a plugin's encode): reading
  // either may throw again, and this error must still be made.
  try {
    const cycle = findCycle(value, target.kind);
    reason =
      cycle !== undefined
        ? `${cycle.path} refers back to ${cycle.to} (a circular reference; send a copy without it)`
        : cause instanceof RangeError && /call stack/i.test(cause.message)
          ? 'the value is nested too deeply'
          : thrownMessage(cause);
  } catch {
    reason = thrownMessage(cause);
  }
  return new RpcError(code, `cannot encode the ${target.kind} of ${target.service}.${target.method} as ${serializerName}: ${reason}`, { cause });
}

/** How far the search for a cycle goes: past this many objects a value is not worth walking. */
const MAX_VISITED = 100_000;

/**
 * The first path in `value` whose object is one of its own ancestors, with that ancestor's
 * path; undefined when there is none (within {@link MAX_VISITED} objects).
 */
export function findCycle(value: unknown, root: string): { path: string; to: string } | undefined {
  const ancestors = new Map<object, string>();
  let visited = 0;
  // Iterative, depth first: the value may be nested deeper than the stack allows.
  const stack: Array<{ value: unknown; path: string } | { leave: object }> = [{ value, path: root }];
  while (stack.length > 0) {
    const item = stack.pop()!;
    if ('leave' in item) {
      ancestors.delete(item.leave);
      continue;
    }
    const current = item.value;
    if (current === null || typeof current !== 'object') continue;
    const seen = ancestors.get(current);
    if (seen !== undefined) return { path: item.path, to: seen };
    if (++visited > MAX_VISITED) return undefined;
    ancestors.set(current, item.path);
    stack.push({ leave: current });
    for (const [key, child] of children(current)) stack.push({ value: child, path: `${item.path}${key}` });
  }
  return undefined;
}

function children(object: object): Array<[string, unknown]> {
  if (ArrayBuffer.isView(object)) return [];
  if (Array.isArray(object)) return object.map((child, i) => [`[${i}]`, child]);
  if (object instanceof Map) return [...object].map(([key, child], i) => [`.get(${typeof key === 'string' ? JSON.stringify(key) : `#${i}`})`, child]);
  if (object instanceof Set) return [...object].map((child, i) => [`[set #${i}]`, child]);
  return Object.keys(object).map((key) => [/^[A-Za-z_$][\w$]*$/.test(key) ? `.${key}` : `[${JSON.stringify(key)}]`, (object as Record<string, unknown>)[key]]);
}
