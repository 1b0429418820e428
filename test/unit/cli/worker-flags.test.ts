import { describe, expect, it } from 'vitest';
import { runCliCaptured as run } from '../../helpers/cli-run.js';

describe('`shuttle worker --stall-timeout`', () => {
  it('takes "none" or whole ms from 100 to a day; anything else exits 2 before starting, naming the flag, the value and what is allowed', async () => {
    for (const bad of ['5', '1.5', 'soon', '86400001']) {
      const { code, written } = await run(['worker', '--engine', 'openai', '--url', 'http://127.0.0.1:1/v1', '--stall-timeout', bad]);
      expect(code).toBe(2);
      expect(written).toContain(`expected "none" or a whole number of ms from 100 to 86400000, got "${bad}"`);
      expect(written).toContain('--stall-timeout');
    }
    const { code, written } = await run(['worker', '--help']);
    expect(code).toBe(0);
    expect(written).toContain('--stall-timeout <ms>');
    expect(written.replace(/\s+/g, ' ')).toContain('silence after which an engine with requests in flight counts as stalled');
  });
});
