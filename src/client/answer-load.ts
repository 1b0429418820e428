import type { Logger } from '../log/log.js';
import { checkLoad } from '../registry/record-check.js';
import { MAX_LOAD_REPORT_BYTES } from '../transport/transport.js';
import type { ProviderStatsTable } from './provider-stats.js';
import { monotonicNow } from '../common/clock.js';

/** Providers whose malformed reports were logged; past this many, new ones go unlogged. */
const MAX_WARNED = 1024;

/**
 * The consumer's side of the load reports providers attach to answers: each report is
 * untrusted bytes, checked like a registry load record (size, JSON, every field's type and
 * range), stamped with its arrival on this consumer's clock and kept as that provider's freshest
 * load signal (balancers prefer it to an older registry snapshot, see load-score.ts). A report
 * that fails a check is dropped — the answer it came with is still delivered — and logged once
 * per provider with the reason.
 */
export function answerLoadListener(stats: ProviderStatsTable, log: Logger): (address: string, body: Uint8Array) => void {
  const warned = new Set<string>();
  const refuse = (address: string, reason: string): void => {
    if (warned.has(address) || warned.size >= MAX_WARNED) return;
    warned.add(address);
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
