import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const src = (path: string): string => fileURLToPath(new URL(`./src/${path}`, import.meta.url));

export default defineConfig({
  resolve: {
    // Tests import the package by name, as users do; inside vitest that name means the sources.
    // Child processes started by integration tests run the compiled build/ against dist/.
    alias: [
      { find: /^shuttle-rpc$/, replacement: src('index.ts') },
      { find: /^shuttle-rpc\/spi$/, replacement: src('spi/spi.ts') },
      { find: /^shuttle-rpc\/inference$/, replacement: src('inference/inference.ts') },
      { find: /^shuttle-rpc\/testing$/, replacement: src('testing/testing.ts') },
      { find: /^shuttle-rpc\/gateway$/, replacement: src('gateway/gateway.ts') },
      { find: /^shuttle-rpc\/engine$/, replacement: src('engine/engine.ts') },
    ],
  },
  test: {
    // The JSON report lets .ci/run print a plain "N passed, N failed" closing line.
    reporters: ['default', ['json', { outputFile: 'build/test-results.json' }]],
    testTimeout: 20_000,
    hookTimeout: 20_000,
    // Integration tests start processes and sockets; two cores, so keep the pool small.
    maxWorkers: 2,
    projects: [
      {
        extends: true,
        test: {
          name: 'tests',
          include: ['test/**/*.test.ts'],
          exclude: ['test/integration/chaos.test.ts', 'test/integration/budgets.test.ts', 'test/integration/etcd-cluster-chaos.test.ts'],
          sequence: { groupOrder: 0 },
        },
      },
      {
        // The budget attacks assert a good client's p99 latency beside each attack: they run
        // on their own, after the other tests, so no other test file shares the two cores.
        extends: true,
        test: { name: 'budgets', include: ['test/integration/budgets.test.ts'], sequence: { groupOrder: 1 } },
      },
      {
        // A 3-member etcd cluster with leases of 2 s, members stopped and resumed: a provider's
        // keep-alive has half a TTL to get through, which a test file beside it on the two cores
        // can take. It runs on its own, after the budget attacks.
        extends: true,
        test: { name: 'etcd-chaos', include: ['test/integration/etcd-cluster-chaos.test.ts'], sequence: { groupOrder: 2 } },
      },
      {
        // The chaos soak loads both cores for minutes in CI: it runs after everything else, so
        // the timing-sensitive tests never share the machine with it.
        extends: true,
        test: { name: 'chaos', include: ['test/integration/chaos.test.ts'], sequence: { groupOrder: 3 } },
      },
    ],
  },
});
