import { describe, expect, it } from 'vitest';
import { RpcCode } from '../../../src/errors/errors.js';
import { GatewayAdmission } from '../../../src/gateway/admission-gate.js';
import type { FleetView } from '../../../src/gateway/fleet-view.js';

/** A fleet of `slots` slots, as the gateway's view of its workers reports it. */
const fleetOf = (slots: number) => ({ slots: () => slots }) as unknown as FleetView;

describe("the gateway's admission of a request of many parts (embeddings)", () => {
  it("gives the parts what is left of the request's timeout, not each a timeout of its own", async () => {
    const admission = new GatewayAdmission({ embeddingParallelism: 1 }, fleetOf(4), undefined);
    try {
      const started = performance.now();
      const given: number[] = [];
      const failure = await admission
        .fanOut(
          { tenant: 't', priority: 1 },
          Array.from({ length: 20 }, (_, i) => i),
          () => 1,
          200,
          new AbortController().signal,
          async (item, timeoutMs) => {
            given.push(timeoutMs);
            await new Promise((resolve) => setTimeout(resolve, 50));
            return { value: item };
          },
        )
        .catch((error: unknown) => error);
      const took = performance.now() - started;
      expect(failure).toMatchObject({
        code: RpcCode.DEADLINE_EXCEEDED,
        message: expect.stringMatching(/reached its deadline \(200 ms\) with \d of its 20 inputs done/),
      });
      // About four parts fit in 200 ms; each was given less time than the one before.
      expect(given.length).toBeLessThanOrEqual(6);
      for (let i = 1; i < given.length; i++) expect(given[i]!).toBeLessThan(given[i - 1]!);
      expect(took).toBeLessThan(1000);
    } finally {
      admission.close();
    }
  });
});
