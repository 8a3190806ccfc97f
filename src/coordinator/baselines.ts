import type { ScanDocument, Store } from '../store/index.js';

/**
 * Per vantage point: the host's latest answered visit from agent group `group`, so a host seen
 * from two groups (inside and outside a firewall) compares each visit with what the same group
 * saw last, not with the other side; the latest answered visit of any group when this group
 * has none among the recent ones.
 */
export async function latestAnsweredScanFrom(store: Store, ip: string, group: string): Promise<ScanDocument | undefined> {
  const latest = await store.getLatestScan(ip);
  if (!latest || (latest.group === group && latest.host?.status !== 'down')) return latest;
  const recent = await store.hostHistory(ip, { limit: 50 });
  return recent.items.find((s) => s.group === group && s.host?.status !== 'down') ?? recent.items.find((s) => s.host?.status !== 'down');
}
