import v8 from 'node:v8';
import vm from 'node:vm';
import { describe, it } from 'vitest';
import { followStream } from '../../../src/proxy/call.js';
import { ClientStream } from '../../../src/transport/client-stream.js';
import { waitUntil } from '../../helpers/wait.js';

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

/** Collects garbage until `done` holds (finalizers run in a later task), up to 3 s. */
async function collectUntil(done: () => boolean, what: string): Promise<void> {
  await waitUntil(
    async () => {
      gc();
      await new Promise((resolve) => setTimeout(resolve, 10));
      return done();
    },
    what,
    3000,
  );
}

/** A stream with two chunks queued; `cancelled` counts the provider-side cancels. */
function openStream(counts: { cancelled: number }): ClientStream {
  const stream = new ClientStream(
    () => {},
    () => void counts.cancelled++,
  );
  stream.push(1, 8);
  stream.push(2, 8);
  return stream;
}

/** What a consumer filter hands back: an object inheriting from the stream, iterated through its own iterator (as metrics/filter.ts does). */
function wrapped(stream: ClientStream): ClientStream {
  const wrapper = Object.create(stream) as ClientStream;
  (wrapper as { [Symbol.asyncIterator]: () => AsyncIterator<unknown> })[Symbol.asyncIterator] = () => {
    const inner = stream[Symbol.asyncIterator]();
    return { next: () => inner.next(), return: (value?: unknown) => inner.return!(value) };
  };
  return wrapper;
}

describe('a stream whose reader drops the iterator', () => {
  it('is cancelled once the iterator is collected, also when a filter wrapped it', async () => {
    const counts = { cancelled: 0 };
    const read = async (wrap: boolean): Promise<void> => {
      const stream = openStream(counts);
      const { iterator } = followStream(Promise.resolve(wrap ? wrapped(stream) : stream));
      await iterator.next();
    };
    await read(false);
    await read(true);
    await collectUntil(() => counts.cancelled === 2, 'both dropped streams cancelled');
  });
});
