import { describe, expect, it } from 'vitest';
import { tokenEventFramer } from '../../../src/gateway/generation.js';

/** What the gateway wrote before the framer: the chunk object through JSON.stringify. */
function objectForm(kind: 'chat' | 'completion', id: string, created: number, model: string | undefined, text: string, usageNull = false): string {
  const object = kind === 'chat' ? 'chat.completion.chunk' : 'text_completion';
  const choice = kind === 'chat' ? { delta: { content: text }, logprobs: null, finish_reason: null } : { text, logprobs: null, finish_reason: null };
  return `data: ${JSON.stringify({ id, object, created, model, choices: [{ index: 0, ...choice }], ...(usageNull ? { usage: null } : {}) })}\n\n`;
}

describe('token events', () => {
  it('are byte for byte what JSON.stringify writes for the chunk object, whatever the text and model', () => {
    const texts = ['', 'hello', ' "quoted" ', 'back\\slash', 'new\nline', 'tab\t', '\u2028\u2029', 'é✓🚀', '\u0000\u001f', '</script>'];
    for (const kind of ['chat', 'completion'] as const) {
      for (const model of ['llama-3-8b', 'odd "model" \\ name', undefined]) {
        for (const usageNull of [false, true]) {
          const frame = tokenEventFramer(kind, 'chatcmpl-1"2', 1_790_000_000, model, usageNull);
          for (const text of texts) {
            const framed = frame(text);
            expect(framed).toBe(objectForm(kind, 'chatcmpl-1"2', 1_790_000_000, model, text, usageNull));
            expect(JSON.parse(framed.slice('data: '.length))).toBeTypeOf('object');
          }
        }
      }
    }
  });
});
