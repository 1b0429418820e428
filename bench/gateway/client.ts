import OpenAI from 'openai';

/*
 * bench:gateway's client process: keeps `concurrency` streaming chat completions of
 * `tokens` tokens in flight against `baseURL` for `ms`, after a warm-up (500 ms unless given), and prints
 * requests, tokens and the time to first token and to the end of each request.
 */
const [baseURL, concurrencyText, msText, tokensText, warmupText = '500'] = process.argv.slice(2);
const concurrency = Number(concurrencyText);
const durationMs = Number(msText);
const maxTokens = Number(tokensText);
const openai = new OpenAI({ baseURL, apiKey: 'bench', maxRetries: 0 });

const ttft: number[] = [];
const total: number[] = [];
let tokens = 0;
let failures = 0;

async function one(): Promise<void> {
  // Counted when started after the warm-up (whatever the other loops are doing).
  const measuring = Date.now() >= warmupEnds;
  const started = performance.now();
  let first = 0;
  let count = 0;
  const stream = await openai.chat.completions.create({
    model: 'bench',
    messages: [{ role: 'user', content: 'benchmark prompt' }],
    max_tokens: maxTokens,
    stream: true,
  });
  for await (const chunk of stream) {
    if (chunk.choices[0]?.delta.content) {
      if (count === 0) first = performance.now();
      count++;
    }
  }
  if (count !== maxTokens) throw new Error(`expected ${maxTokens} tokens, got ${count}`);
  if (measuring) {
    ttft.push(first - started);
    total.push(performance.now() - started);
    tokens += count;
  }
}

const warmupEnds = Date.now() + Number(warmupText);
const ends = warmupEnds + durationMs;
await Promise.all(
  Array.from({ length: concurrency }, async () => {
    while (Date.now() < ends) {
      await one().catch(() => failures++);
    }
  }),
);
const percentile = (values: number[], p: number): number => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
};
process.stdout.write(
  `${JSON.stringify({ requests: total.length, tokens, seconds: durationMs / 1000, failures, ttft50: percentile(ttft, 50), ttft99: percentile(ttft, 99), total50: percentile(total, 50), total99: percentile(total, 99) })}\n`,
);
