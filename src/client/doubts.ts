import { oncePerKey } from '../common/once-per-key.js';
import type { Logger } from '../log/log.js';
import type { Doubt } from '../loadbalance/believed.js';

/**
 * Logs, at `warn` and once per provider address and figure (see oncePerKey), a figure of a provider's record that
 * the balancers do not believe as claimed (believed.ts): records are read again at every registry
 * snapshot, and a line per snapshot — let alone per call — would flood the log.
 */
export function doubtListener(log: Logger): (doubt: Doubt) => void {
  const first = oncePerKey();
  return (doubt) => {
    const key = `${doubt.address} ${doubt.field}`;
    if (!first(key)) return;
    log.warn(
      { provider: doubt.address, field: doubt.field, claimed: String(doubt.claimed), believed: doubt.believed ?? 'the default', reason: doubt.reason },
      'a provider figure is not believed as claimed; load balancing uses the believed value',
    );
  };
}
