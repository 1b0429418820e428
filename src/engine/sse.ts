import type { Readable } from 'node:stream';
import { createParser } from 'eventsource-parser';
import { RpcCode, RpcError } from '../errors/errors.js';
import { PushStream } from '../server/push-stream.js';
import type { AnswerBudget } from './answer-budget.js';

/**
 * The most one Server-Sent Event may buffer before its end arrives. An OpenAI chunk is a few
 * hundred bytes (a few KiB with logprobs); an engine that streams without ever ending an event
 * fails the call instead of growing the worker's memory.
 */
export const MAX_SSE_EVENT_CHARS = 1024 * 1024;

/** Tokens that may wait for the reader before the engine's body is paused. */
const HIGH_WATER_MARK = 64;

/**
 * The most values that may wait for the reader. The body is paused at {@link HIGH_WATER_MARK},
 * but one read can hold many events; an engine whose single read holds more than this is
 * flooding, and the stream fails.
 */
const MAX_BUFFERED = HIGH_WATER_MARK * 64;

/** How long the rest of a body after `[DONE]` may take before its connection is closed. */
const DRAIN_AFTER_DONE_MS = 5_000;

/** What {@link relaySse} does with an engine's events. */
export interface SseRelay<T, R> {
  /** The value an event's `data` gives the reader, or undefined for none; may throw an RpcError. */
  onEvent(data: string): T | undefined;
  /**
   * The stream's trailer, once the events are over: `done` when OpenAI's `[DONE]` ended them,
   * false when the body simply ended (it may throw: an answer that stops without saying it is
   * complete is a broken one).
   */
  onEnd(done: boolean): R;
  /**
   * A last value for the reader, once the events are over and before {@link onEnd}: what
   * {@link onEvent} held back waiting for the next event (half of a character), or undefined.
   */
  flush?(): T | undefined;
  /** The error for a body that broke before its end. */
  onBroken(error: Error): RpcError;
  /**
   * The most the first event may hold, characters, when it may be larger than the others (it
   * carries the prompt's token ids when they were asked for); the others stay within
   * {@link MAX_SSE_EVENT_CHARS}, so a caller that is behind holds at most that many a token.
   */
  maxFirstEventChars?: number;
  /**
   * The worker's budget for answers being read: the characters of an event whose end has not
   * arrived yet are charged to it (to within one read of the body), so many streams each holding
   * an unfinished event cannot add up past it; the stream fails RESOURCE_EXHAUSTED instead.
   */
  budget?: AnswerBudget;
  /** The request, for errors (`POST …/completions`). */
  what?: string;
}

/**
 * Relays the Server-Sent Events of an engine's HTTP response body into a {@link PushStream}, as
 * they arrive: the SSE framing (`data:` lines, multi-line events, comments, CRLF, events split
 * across chunks, UTF-8 split across chunks) is eventsource-parser's job; OpenAI's `[DONE]` ends
 * the stream. No generator and no promise per event: the body's chunks are parsed in its
 * `data` events and each value is pushed.
 *
 * - Backpressure: while the reader is {@link HIGH_WATER_MARK} values behind, the body is paused,
 *   so the engine's socket, not this process, holds the rest.
 * - The reader leaving (a cancel, the deadline, a dropped caller) destroys the body, which
 *   closes the connection: that is what tells the engine to drop the sequence.
 * - An event over {@link MAX_SSE_EVENT_CHARS} (the first: `maxFirstEventChars`), or one `onEvent` refuses, fails the stream and
 *   closes the connection. After `[DONE]` the body is read to its end (for at most a few seconds)
 *   so that its connection goes back to the pool.
 */
export function relaySse<T, R>(body: Readable, relay: SseRelay<T, R>): PushStream<T, R> {
  // The parser buffers up to the larger limit; events after the first are held to the smaller.
  const maxBufferChars = Math.max(MAX_SSE_EVENT_CHARS, relay.maxFirstEventChars ?? 0);
  let events = 0;
  const stream = new PushStream<T, R>({ highWaterMark: HIGH_WATER_MARK, maxBuffered: MAX_BUFFERED });
  let over = false;
  const budget = relay.budget;
  /** Characters fed since the last event ended, and how many of them are charged to the budget. */
  let pending = 0;
  let charged = 0;
  const uncharge = (): void => {
    budget?.release(charged);
    charged = 0;
  };
  const fail = (error: unknown): void => {
    if (over) return;
    over = true;
    uncharge();
    stream.fail(RpcError.from(error, RpcCode.INTERNAL));
    body.destroy();
  };
  const finish = (done: boolean): void => {
    if (over) return;
    uncharge();
    let trailer: R;
    let last: T | undefined;
    try {
      last = relay.flush?.();
      trailer = relay.onEnd(done);
    } catch (error) {
      return fail(error);
    }
    over = true;
    if (last !== undefined) stream.push(last);
    stream.end(trailer);
    if (!body.readableEnded) {
      const timer = setTimeout(() => body.destroy(), DRAIN_AFTER_DONE_MS).unref();
      body.once('close', () => clearTimeout(timer));
      body.resume();
    }
  };
  const parser = createParser({
    onEvent: (event) => {
      if (over) return;
      pending = 0;
      if (event.data === '[DONE]') return finish(true);
      if (events++ > 0 && event.data.length > MAX_SSE_EVENT_CHARS) return fail(tooLarge(MAX_SSE_EVENT_CHARS));
      let value: T | undefined;
      try {
        value = relay.onEvent(event.data);
      } catch (error) {
        return fail(error);
      }
      if (value === undefined) return;
      if (stream.buffered >= MAX_BUFFERED) {
        return fail(new RpcError(RpcCode.RESOURCE_EXHAUSTED, `engine sent more than ${MAX_BUFFERED} events in one read while the caller was behind`));
      }
      if (!stream.push(value) && !stream.closed && !body.isPaused()) {
        body.pause();
        void stream.ready().then(() => {
          if (!over) body.resume();
        });
      }
    },
    // The SSE specification has a reader ignore what it does not understand (an unknown field,
    // a `retry` that is not a number): only an event past the size limit fails the stream.
    onError: (error) => {
      if (error.type === 'max-buffer-size-exceeded') fail(tooLarge(maxBufferChars));
    },
    maxBufferSize: maxBufferChars,
  });
  body.setEncoding('utf8');
  let first = true;
  body.on('data', (text: string) => {
    if (over) return;
    // A byte-order mark before the first event is not part of it (the specification strips it).
    if (first) {
      first = false;
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    }
    pending += text.length;
    parser.feed(text);
    if (over || budget === undefined) return;
    // What the parser holds now is the event begun and not ended: its characters are charged
    // (an event ended in this read set pending back to 0, so the rest of this read is not).
    if (pending > charged) {
      try {
        budget.take(pending - charged, charged, relay.what ?? 'a stream');
      } catch (error) {
        return fail(error);
      }
      charged = pending;
    } else if (pending === 0 && charged > 0) uncharge();
  });
  // Some engines end the body without [DONE]: the events are over, if the relay agrees.
  body.on('end', () => finish(false));
  body.on('error', (error) => fail(relay.onBroken(error)));
  body.on('close', () => {
    if (!body.readableEnded) fail(relay.onBroken(new Error('the connection closed before the answer ended')));
  });
  stream.onClose(() => {
    // The reader left before the events were over: close the engine request.
    if (!over) {
      over = true;
      uncharge();
      body.destroy();
    }
  });
  return stream;
}

function tooLarge(chars: number): RpcError {
  return new RpcError(RpcCode.INTERNAL, `engine sent an SSE event over ${chars} characters`);
}
