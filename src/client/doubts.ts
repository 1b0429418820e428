import type { Logger } from '../log/log.js';
import type { Doubt } from '../loadbalance/believed.js';

/** Provider figures whose doubt was logged; past this many, new ones go unlogged. */
const MAX_DOUBTS_LOGGED = 1024;

/**
 * Logs, at `warn` and once per provider address and figure, a figure of a provider's record that
 * the balancers do not believe as claimed (believed.ts): records are read again at every registry
 * snapshot, and a line per snapshot — let alone per call — would flood the log.
 */
export function doubtListener(log: Logger): (doubt: Doubt) => void {
  const logged = new Set<string>();
  return (doubt) => {
    const key = `${doubt.address} ${doubt.field}`;
    if (logged.has(key) || logged.size >= MAX_DOUBTS_LOGGED) return;
    logged.add(key);
    log.warn(
      { provider: doubt.address, field: doubt.field, claimed: String(doubt.claimed), believed: doubt.believed ?? 'the default', reason: doubt.reason },
      'a provider figure is not believed as claimed; load balancing uses the believed value',
    );
  };
}
