import type { LoadSnapshot } from '../registry/instance.js';
import { familiesRead, metricNames, readEngineMetrics, type EngineMetricNames, type EngineMetricsSpec } from './engine-metrics.js';
import { MetricsLines } from './metrics-lines.js';
import { monotonicNow } from '../common/clock.js';

/** The most of a `/metrics` answer read (vLLM's is tens to hundreds of KiB); beyond it, a failed poll. */
export const MAX_METRICS_BYTES = 4 * 1024 * 1024;

/** The load fields an engine's metrics last gave (those of a LoadSnapshot, each optional). */
export type LoadFields = { -readonly [K in keyof Omit<LoadSnapshot, 'timestamp' | 'receivedAt' | 'draining'>]?: LoadSnapshot[K] };

/**
 * Polls an engine's Prometheus `/metrics` and keeps the latest load, for the worker's
 * `load()` callback (which must answer at once). Between polls the generated-token counter
 * becomes tokens per second. A failed poll keeps the last load and is reported once through
 * `onError` until a poll succeeds again.
 *
 * Each poll is bounded: it times out after its interval (at least 1 s), headers and body
 * together; it reads at most {@link MAX_METRICS_BYTES}; and only the lines of the families read
 * are kept as they arrive and then parsed (see {@link MetricsLines}).
 */
export class EngineLoad {
  readonly #url: string;
  readonly #names: EngineMetricNames;
  readonly #families: readonly string[];
  readonly #intervalMs: number;
  readonly #onError: (error: Error) => void;
  #timer: NodeJS.Timeout | undefined;
  #current: LoadFields = {};
  #lastTokens: { total: number; at: number } | undefined;
  #failing = false;
  /** KV capacity in tokens, when the engine's metrics tell it. */
  kvCapacityTokens: number | undefined;

  constructor(url: string, spec: EngineMetricsSpec | undefined, intervalMs: number, onError: (error: Error) => void) {
    this.#url = url;
    this.#names = metricNames(spec);
    this.#families = familiesRead(this.#names);
    this.#intervalMs = intervalMs;
    this.#onError = onError;
  }

  /** The latest load read (empty before the first successful poll). */
  get current(): LoadFields {
    return this.#current;
  }

  /** Polls once now (resolves when done, never rejects), then every interval until stop(). */
  async start(): Promise<void> {
    await this.#poll();
    const tick = (): void => {
      this.#timer = setTimeout(() => void this.#poll().finally(() => this.#timer !== undefined && tick()), this.#intervalMs);
      this.#timer.unref();
    };
    tick();
  }

  stop(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  async #poll(): Promise<void> {
    try {
      const response = await fetch(this.#url, { signal: AbortSignal.timeout(Math.max(1000, this.#intervalMs)) });
      if (!response.ok) throw new Error(`${this.#url} answered ${response.status}`);
      const text = response.body === null ? '' : await this.#read(response.body);
      const sample = readEngineMetrics(text, this.#names);
      const load: LoadFields = { ...sample.load };
      const now = monotonicNow();
      if (sample.generatedTokensTotal !== undefined) {
        const last = this.#lastTokens;
        if (last !== undefined && now > last.at && sample.generatedTokensTotal >= last.total) {
          load.tokensPerSecond = ((sample.generatedTokensTotal - last.total) * 1000) / (now - last.at);
        }
        this.#lastTokens = { total: sample.generatedTokensTotal, at: now };
      }
      this.kvCapacityTokens = sample.kvCapacityTokens ?? this.kvCapacityTokens;
      this.#current = load;
      this.#failing = false;
    } catch (error) {
      if (!this.#failing) this.#onError(new Error(`cannot read engine metrics from ${this.#url}: ${(error as Error).message}`, { cause: error }));
      this.#failing = true;
    }
  }

  /** The lines of the families read, from at most MAX_METRICS_BYTES of the body; leaving the loop early cancels the body. */
  async #read(body: AsyncIterable<Uint8Array>): Promise<string> {
    const lines = new MetricsLines(this.#families);
    const decoder = new TextDecoder();
    let bytes = 0;
    for await (const chunk of body) {
      bytes += chunk.length;
      if (bytes > MAX_METRICS_BYTES) throw new Error(`${this.#url} answered more than ${MAX_METRICS_BYTES} bytes of metrics`);
      lines.feed(decoder.decode(chunk, { stream: true }));
    }
    lines.feed(decoder.decode());
    return lines.text();
  }
}
