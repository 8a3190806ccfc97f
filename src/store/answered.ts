import { ANSWERED_SEARCH_DEPTH, type ScanDocument, type Store } from './types.js';

/**
 * What a host visit compares against (src/coordinator): the host's latest scan in which it
 * answered. A scan of a silent host (`status: down`, kept in history) must not become the
 * baseline, or its services would all look new next time.
 */
const answered = (scan: ScanDocument): boolean => scan.host?.status !== 'down';

/** Scans of a host read to find its answered visit from one agent group (`latestAnsweredScanFrom`). */
const GROUP_SEARCH_DEPTH = 50;

/**
 * The newest of a host's scans in which it answered (its host not down), among its
 * ANSWERED_SEARCH_DEPTH newest: the store's fast path when it has one (`Store.latestAnsweredScan`),
 * else the latest scan, then a page of the newest.
 */
export async function latestAnsweredScan(
  store: Store,
  ip: string,
  latestRead?: Promise<ScanDocument | undefined>,
): Promise<ScanDocument | undefined> {
  if (store.latestAnsweredScan) return store.latestAnsweredScan(ip);
  return latestAnsweredScanPaged(store, ip, latestRead);
}

/**
 * `latestAnsweredScan` read through `getLatestScan` and `hostHistory` alone (any store);
 * `latestRead`: the host's `getLatestScan`, when already started (a lease batch reads ahead).
 */
export async function latestAnsweredScanPaged(
  store: Store,
  ip: string,
  latestRead?: Promise<ScanDocument | undefined>,
): Promise<ScanDocument | undefined> {
  const latest = await (latestRead ?? store.getLatestScan(ip));
  if (!latest || answered(latest)) return latest;
  const recent = await store.hostHistory(ip, { limit: ANSWERED_SEARCH_DEPTH });
  return recent.items.find(answered);
}

/**
 * Per vantage point: the host's latest answered visit from agent group `group`, so a host seen
 * from two groups (inside and outside a firewall) compares each visit with what the same group
 * saw last, not with the other side; the latest answered visit of any group when this group
 * has none among the recent ones.
 */
export async function latestAnsweredScanFrom(
  store: Store,
  ip: string,
  group: string,
  latestRead?: Promise<ScanDocument | undefined>,
): Promise<ScanDocument | undefined> {
  const latest = await (latestRead ?? store.getLatestScan(ip));
  if (!latest || (latest.group === group && answered(latest))) return latest;
  const recent = await store.hostHistory(ip, { limit: GROUP_SEARCH_DEPTH });
  return recent.items.find((s) => s.group === group && answered(s)) ?? recent.items.find(answered);
}
