import { Cancelled } from './errors.js';
import { openTarget, toJson, type CallingOptions } from './invoke.js';
import { writeErr, writeOut } from './terminal.js';

/**
 * `shuttle call SERVICE.METHOD '<json>'`: one call. A unary result is printed as JSON; a
 * stream prints each chunk on its own line as it arrives, then the trailer (on stderr, or as
 * the last JSON line with `--json`). Ctrl-C cancels the call on the provider.
 */
export async function runCall(target: string, requestText: string, options: CallingOptions): Promise<void> {
  const opened = await openTarget(target, requestText, options);
  const controller = new AbortController();
  const onInterrupt = (): void => controller.abort();
  process.once('SIGINT', onInterrupt);
  try {
    if (opened.stream) {
      const call = opened.call(controller.signal) as AsyncIterable<unknown> & { trailer: Promise<unknown> };
      let chunks = 0;
      for await (const chunk of call) {
        chunks++;
        writeOut(`${options.json ? toJson({ chunk }) : toJson(chunk)}\n`);
      }
      const trailer = await call.trailer;
      if (options.json) writeOut(`${toJson({ end: { chunks, trailer } })}\n`);
      else writeErr(`(${chunks} chunks${trailer === undefined ? '' : `; trailer ${toJson(trailer)}`})\n`);
    } else {
      const result = await (opened.call(controller.signal) as Promise<unknown>);
      writeOut(`${toJson(result, options.json ? undefined : 2)}\n`);
    }
  } catch (error) {
    if (controller.signal.aborted) {
      writeErr(`cancelled ${opened.service}.${opened.method}\n`);
      throw new Cancelled();
    }
    throw opened.explain(error);
  } finally {
    process.off('SIGINT', onInterrupt);
    await opened.client.close();
  }
}
