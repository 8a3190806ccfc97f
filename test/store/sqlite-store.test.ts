import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';
import { openSqliteStore } from '../../src/store/sqlite-store.js';
import { describeStoreConformance } from './conformance.js';
import { describeOutboxConformance } from './coordination-conformance.js';

const dir = mkdtempSync(join(tmpdir(), 'portbandit-sqlite-'));
let n = 0;
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/**
 * The contract does not depend on where WAL checkpoints run, and most stores here live for
 * milliseconds, less than one interval of the checkpoint worker (1 s): these stores use SQLite's
 * automatic checkpoints (checkpointIntervalMs 0) rather than start a worker thread each (~40 ms of
 * CPU apiece, three quarters of this file's CPU). The worker, the default, is covered by
 * sqlite-checkpointer.test.ts and sqlite-durability.test.ts, and runs in the outbox suite below.
 */
const plainStore = () => openSqliteStore({ path: join(dir, `store-${n++}.db`), checkpointIntervalMs: 0 });

describeStoreConformance('sqlite', plainStore);

describeOutboxConformance(
  'sqlite',
  async () => {
    const path = join(dir, `outbox-${n++}.db`);
    return { store: await openSqliteStore({ path, outbox: true }), reopen: () => openSqliteStore({ path, outbox: true }) };
  },
  () => openSqliteStore({ path: join(dir, `store-${n++}.db`) }),
);
