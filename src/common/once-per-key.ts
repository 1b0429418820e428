import { RecentMap } from './recent-map.js';

/**
 * A test for "the first time of this key": true the first time `key` is asked about, false
 * after, among the 1,024 to 2,048 keys asked about most recently (see RecentMap). For lines
 * logged once per provider address: a fixed set that stops at its size goes silent for good
 * once a consumer has seen that many addresses — in weeks of providers restarting on new ports
 * — and one that never stops grows with every address.
 */
export function oncePerKey(limit = 1024): (key: string) => boolean {
  const seen = new RecentMap<string, true>(limit);
  return (key) => {
    if (seen.get(key) === true) return false;
    seen.set(key, true);
    return true;
  };
}
