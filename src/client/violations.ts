import { oncePerKey } from '../common/once-per-key.js';
import type { RpcError } from '../errors/errors.js';
import type { Logger } from '../log/log.js';

/**
 * Logs, at `warn` and once per provider address (see oncePerKey), that the consumer closed its connection to a
 * provider for breaking the protocol (tcp: a malformed frame, a chunk past the window, a flood
 * of frames that do no work). A provider that breaks it again after each reconnect adds no line;
 * each close is still counted on its connection (`protocolErrors`).
 */
export function violationListener(log: Logger): (address: string, error: RpcError) => void {
  const first = oncePerKey();
  return (address, error) => {
    if (!first(address)) return;
    log.warn(
      { provider: address, reason: error.rawMessage },
      'closed the connection to a provider that broke the protocol; its later violations are not logged',
    );
  };
}
