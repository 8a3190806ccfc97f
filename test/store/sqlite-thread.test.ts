import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';
import { openSqliteStoreOnThread } from '../../src/store/sqlite-thread.js';
import { describeStoreConformance } from './conformance.js';
import { describeOutboxConformance } from './coordination-conformance.js';

const dir = mkdtempSync(join(tmpdir(), 'portbandit-sqlite-thread-'));
let n = 0;
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// The same contract as the SQLite store on the calling thread (sqlite-store.test.ts): writes on the store's thread, reads here.
const threadStore = () => openSqliteStoreOnThread({ path: join(dir, `store-${n++}.db`), checkpointIntervalMs: 0 });

describeStoreConformance('sqlite on its thread', threadStore);

describeOutboxConformance(
  'sqlite on its thread',
  async () => {
    const path = join(dir, `outbox-${n++}.db`);
    return { store: await openSqliteStoreOnThread({ path, outbox: true }), reopen: () => openSqliteStoreOnThread({ path, outbox: true }) };
  },
  () => openSqliteStoreOnThread({ path: join(dir, `store-${n++}.db`) }),
);
