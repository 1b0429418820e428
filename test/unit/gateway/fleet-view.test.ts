import { describe, expect, it } from 'vitest';
import type { ProviderStatus, RpcClient } from '../../../src/client/client.js';
import { FleetView } from '../../../src/gateway/fleet-view.js';

/** A client whose provider list is `list`, counting how often it is asked. */
function clientOf(list: Array<Partial<ProviderStatus>>): { client: RpcClient; asked: () => number } {
  let asked = 0;
  const client = {
    providers: () => {
      asked++;
      return list as ProviderStatus[];
    },
  } as unknown as RpcClient;
  return { client, asked: () => asked };
}

const worker = (slots: unknown, extra: Partial<ProviderStatus> = {}): Partial<ProviderStatus> => ({
  service: 'inference.LLM',
  metadata: { slots },
  ejected: false,
  breaker: 'closed',
  ...extra,
});

describe('FleetView', () => {
  it("sums the LLM workers' slots, leaving out other services, ejected workers and open breakers; a worker without slots makes it unlimited", () => {
    const { client } = clientOf([
      worker(4),
      worker(8),
      worker(16, { ejected: true }),
      worker(32, { breaker: 'open' }),
      { service: 'other.Service', metadata: { slots: 100 } },
    ]);
    const view = new FleetView(client);
    expect(view.slots()).toBe(12);
    expect(view.workers()).toHaveLength(4);
    expect(new FleetView(clientOf([worker(4), worker(undefined)]).client).slots()).toBe(Number.POSITIVE_INFINITY);
  });

  it('looks at a fleet with workers once per 100 ms, and at an empty one every time', async () => {
    const list: Array<Partial<ProviderStatus>> = [];
    const { client, asked } = clientOf(list);
    const view = new FleetView(client);
    view.workers();
    view.slots();
    expect(asked()).toBe(2);
    list.push(worker(4));
    expect(view.slots()).toBe(4);
    for (let i = 0; i < 10; i++) view.workers();
    expect(asked()).toBe(3);
    list.push(worker(4));
    expect(view.slots()).toBe(4);
    await new Promise((resolve) => setTimeout(resolve, 120));
    expect(view.slots()).toBe(8);
    expect(asked()).toBe(4);
  });
});
