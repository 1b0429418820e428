import { monotonicNow } from '../common/clock.js';

/*
 * How the admin endpoint shares the answers it builds between requests: a flood of scrapes or
 * many dashboard tabs must cost the process a bounded share of its CPU, not one build each.
 */

/** The dashboard's fastest poll; what it polls is shared between requests this close together. */
const DASHBOARD_POLL_MS = 250;

/** `build`, its answer shared by every call within DASHBOARD_POLL_MS of the call that started it. */
export function recent(build: () => Promise<string>): () => Promise<string> {
  let last: { at: number; answer: Promise<string> } | undefined;
  return () => {
    const now = monotonicNow();
    if (last === undefined || now - last.at >= DASHBOARD_POLL_MS) last = { at: now, answer: build() };
    const { answer } = last;
    // A failed build is not shared: the next call builds again.
    answer.catch(() => {
      if (last?.answer === answer) last = undefined;
    });
    return answer;
  };
}

/**
 * `build`, with every call made while one runs answered by that one, and its answer reused for
 * as long as it took to build (a build of 250 ms serves the calls of the next 250 ms; one of
 * 2 ms, those of the next 2 ms): however fast calls come, building takes at most half the time.
 */
export function paced(build: () => Promise<string>): () => Promise<string> {
  let running: Promise<string> | undefined;
  let last: { answer: string; until: number } | undefined;
  return () => {
    if (last !== undefined && monotonicNow() < last.until) return Promise.resolve(last.answer);
    last = undefined;
    running ??= (async () => {
      const started = monotonicNow();
      try {
        const answer = await build();
        const ended = monotonicNow();
        last = { answer, until: ended + (ended - started) };
        return answer;
      } finally {
        running = undefined;
      }
    })();
    return running;
  };
}
