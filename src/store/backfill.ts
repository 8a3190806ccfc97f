import type { ElasticsearchScanIndex } from './elasticsearch-store.js';
import type { OutboxRecord, ScanDocument, Store } from './types.js';

/** What a backfill has written so far. */
export interface BackfillProgress {
  /** Visits (history documents) sent, and how many of them were their host's latest. */
  readonly visits: number;
  readonly latest: number;
  /** Events sent. */
  readonly events: number;
  /** Visits the store dropped (retention) while they were being sent, deleted from the index again. */
  readonly deleted: number;
}

export interface BackfillOptions {
  /** Only visits finished at or after this time (ms); events are sent whole either way. */
  readonly since?: number;
  /** Visits per `_bulk` (and events per page), default 500. */
  readonly batchSize?: number;
  /** Send the stored events too (default true). */
  readonly events?: boolean;
  /** Called after each batch. */
  readonly onProgress?: (progress: BackfillProgress) => void;
}

/**
 * Send what a coordination store already holds (history, each host's latest, events) into a
 * search index: for a deployment that adds Elasticsearch to a store with results in it. The
 * outbox carries only writes made after the index was configured; this fills in the rest.
 *
 * It writes through `applyOutbox`, so it is idempotent and safe next to a running coordinator
 * and its feeder: history and latest documents carry external versions (finishedAt), so a newer
 * visit the feeder wrote first is not overwritten, and events are keyed by the store's ids.
 * A host's latest is read from the store at send time, so only that visit writes the index's
 * latest document (history sent in time order with external versions would end at the same
 * latest, rewriting it once per visit). A visit the store deleted meanwhile (retention) is
 * deleted from the index again after its batch.
 */
export async function backfillIndex(
  record: Store,
  index: ElasticsearchScanIndex,
  options: BackfillOptions = {},
): Promise<BackfillProgress> {
  const batchSize = options.batchSize ?? 500;
  if (!Number.isSafeInteger(batchSize) || batchSize < 1 || batchSize > 10_000) {
    throw new RangeError(`backfill batchSize must be an integer 1-10000, got ${String(options.batchSize)}`);
  }
  const progress = { visits: 0, latest: 0, events: 0, deleted: 0 };
  let seq = 0;
  let batch: ScanDocument[] = [];
  const flush = async (): Promise<void> => {
    if (batch.length === 0) return;
    const latestOf = new Map<string, string | undefined>();
    for (const scan of batch) if (!latestOf.has(scan.ip)) latestOf.set(scan.ip, (await record.getLatestScan(scan.ip))?.scanId);
    const records: OutboxRecord[] = batch.map((scan) => ({
      id: `backfill-${++seq}`,
      kind: 'visit',
      scan,
      latest: latestOf.get(scan.ip) === scan.scanId,
      events: [],
    }));
    await index.applyOutbox(records);
    const gone: string[] = [];
    for (const scan of batch) if ((await record.getScan(scan.scanId)) === undefined) gone.push(scan.scanId);
    if (gone.length > 0) await index.applyOutbox([{ id: `backfill-${++seq}`, kind: 'delete', scanIds: gone }]);
    progress.visits += batch.length;
    progress.latest += records.filter((r) => r.kind === 'visit' && r.latest).length;
    progress.deleted += gone.length;
    batch = [];
    options.onProgress?.({ ...progress });
  };
  for await (const scan of record.exportHistory({ ...(options.since !== undefined ? { since: options.since } : {}), batchSize })) {
    batch.push(scan);
    if (batch.length >= batchSize) await flush();
  }
  await flush();
  if (options.events !== false) {
    let cursor: string | undefined;
    for (;;) {
      const page = await record.readEvents({ ...(cursor !== undefined ? { cursor } : {}), limit: Math.min(batchSize, 1000) });
      if (page.events.length === 0) break;
      await index.applyOutbox([{ id: `backfill-${++seq}`, kind: 'events', events: page.events }]);
      progress.events += page.events.length;
      options.onProgress?.({ ...progress });
      if (page.cursor === cursor) break;
      cursor = page.cursor;
    }
  }
  return { ...progress };
}
