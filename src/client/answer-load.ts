import { oncePerKey } from '../common/once-per-key.js';
import type { Logger } from '../log/log.js';
import { checkLoad } from '../registry/record-check.js';
import { MAX_LOAD_REPORT_BYTES } from '../transport/transport.js';
import type { ProviderStatsTable } from './provider-stats.js';
import { monotonicNow } from '../common/clock.js';

/**
 * The consumer's side of the load reports providers attach to answers: each report is
 * untrusted bytes, checked like a registry load record (size, JSON, every field's type and
 * range), stamped with its arrival on this consumer's clock and kept as that provider's freshest
 * load signal (balancers prefer it to an older registry snapshot, see load-score.ts). A report
 * that fails a check is dropped — the answer it came with is still delivered — and logged once
 * per provider (see oncePerKey) with the reason.
 */
export function answerLoadListener(stats: ProviderStatsTable, log: Logger): (address: string, body: Uint8Array) => void {
  const first = oncePerKey();
  const refuse = (address: string, reason: string): void => {
    if (!first(address)) return;
    log.warn({ provider: address, reason }, 'provider sent a load report this client cannot use; its reports are ignored until they are well formed');
  };
  return (address, body) => {
    if (body.length > MAX_LOAD_REPORT_BYTES) return refuse(address, `${body.length} bytes, over ${MAX_LOAD_REPORT_BYTES}`);
    let value: unknown;
    try {
      value = JSON.parse(Buffer.from(body.buffer, body.byteOffset, body.length).toString('utf8'));
    } catch {
      return refuse(address, 'not JSON');
    }
    const load = checkLoad(value);
    if (typeof load === 'string') return refuse(address, load);
    stats.get(address).observeAnswerLoad({ ...load, receivedAt: monotonicNow() });
  };
}
