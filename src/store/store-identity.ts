import { randomUUID } from 'node:crypto';
import { isPortbanditError } from '../core/index.js';
import type { CoordinationStore } from './types.js';

/** The `coordinator` document that names a coordination database. */
const STORE_ID_KEY = 'store-id';

/**
 * A coordination database's identity: a random id made on first use and kept in the store (a
 * `coordinator` document), shared by every coordinator on it. A search index is bound to one
 * (`ElasticsearchScanIndex.claimOwner`).
 */
export async function storeIdentity(record: Pick<CoordinationStore, 'getDocument' | 'putDocument'>, now = Date.now()): Promise<string> {
  const stored = await record.getDocument<{ id: string }>('coordinator', STORE_ID_KEY);
  if (stored) return stored.value.id;
  try {
    return (await record.putDocument('coordinator', STORE_ID_KEY, { id: randomUUID() }, { at: now, expectedRevision: 0 })).value.id;
  } catch (error) {
    // Another coordinator on the same database made it first.
    if (!isPortbanditError(error) || error.code !== 'PB_ERR_CONFLICT') throw error;
    const made = await record.getDocument<{ id: string }>('coordinator', STORE_ID_KEY);
    if (!made) throw error;
    return made.value.id;
  }
}
