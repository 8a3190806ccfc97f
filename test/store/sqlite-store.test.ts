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

describeStoreConformance('sqlite', () => openSqliteStore({ path: join(dir, `store-${n++}.db`) }));

describeOutboxConformance(
  'sqlite',
  async () => {
    const path = join(dir, `outbox-${n++}.db`);
    return { store: await openSqliteStore({ path, outbox: true }), reopen: () => openSqliteStore({ path, outbox: true }) };
  },
  () => openSqliteStore({ path: join(dir, `store-${n++}.db`) }),
);
