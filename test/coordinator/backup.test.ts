import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backupSqliteFile } from '../../src/store/sqlite-backup.js';
import { openSqliteStore } from '../../src/store/sqlite-store.js';
import type { ScanDocument, Store } from '../../src/store/types.js';
import { runCli } from '../helpers/cli.js';
import { open, scan } from '../store/fixtures.js';
import { addScope, getWork, manualClock, openApp, resultFor, submit, tempDataDir, tokens } from './helpers.js';

async function all<T>(items: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of items) out.push(item);
  return out;
}

/** Every visit of a SQLite store, by id. */
async function historyOf(path: string): Promise<Map<string, ScanDocument>> {
  const store = await openSqliteStore({ path, checkpointIntervalMs: 0 });
  try {
    return new Map((await all(store.exportHistory())).map((s) => [s.scanId, s]));
  } finally {
    await store.close();
  }
}

// `portbandit backup` on a data directory a real coordinator wrote (real SQLite files), and the
// copy function itself next to a connection that keeps writing.
describe('portbandit backup', () => {
  const data = tempDataDir();
  const clock = manualClock();
  let app: FastifyInstance;

  beforeAll(async () => {
    app = await openApp(data.dir, clock.now);
    const t = await tokens(app);
    await addScope(app, t.admin, [{ range: '198.18.21.0/30', tags: ['lab'] }]);
    await app.coordinator.setPolicy('', { strategy: 'fixed', budget: 3, params: { ports: [22, 80, 3389] }, periodSeconds: null });
    for (let i = 0; i < 12; i++) {
      const w = (await getWork(app, t.agents[0]!))!;
      clock.advance(60_000);
      expect((await submit(app, t.agents[0]!, resultFor(w, (w.cycle ?? 0) % 2 === 1 ? [w.ports[0]!] : [], clock.now()))).statusCode).toBe(
        200,
      );
    }
    // The coordinator stays open: the copy is taken next to it, as an operator would.
  });
  afterAll(async () => {
    await app?.close();
    data.cleanup();
  });

  it('copies the store next to a running coordinator into a data directory that opens with the same history', async () => {
    const out = join(data.dir, 'copy-1');
    const res = await runCli(['backup', '--data', data.dir, '--out', out]);
    expect(res.err).toContain(`backup: copying a snapshot of ${join(data.dir, 'portbandit.db')}`);
    expect(res.code).toBe(0);
    expect(res.out).toMatch(
      new RegExp(
        `^backed up ${data.dir} to ${out}: portbandit\\.db [\\d.]+ MiB in [\\d.]+ s; checked by SQLite; 12 visits, 4 hosts, \\d+ events\\n$`,
      ),
    );
    expect(existsSync(join(out, 'portbandit.db.partial'))).toBe(false);
    const source = await historyOf(join(data.dir, 'portbandit.db'));
    const copy = await historyOf(join(out, 'portbandit.db'));
    expect(copy.size).toBe(12);
    expect(copy).toEqual(source);
    // The copy is a data directory: the CLI reads it like the original (tokens, scope, policy came along).
    const scope = await runCli(['scope', 'list', '--data', out]);
    expect(scope.code).toBe(0);
    expect(scope.out).toContain('198.18.21.0/30');
  });

  it('refuses an --out that holds anything, and a --data without a store, making nothing', async () => {
    const used = join(data.dir, 'used');
    mkdirSync(used);
    writeFileSync(join(used, 'keep.txt'), 'mine');
    const busy = await runCli(['backup', '--data', data.dir, '--out', used]);
    expect(busy.code).toBe(2);
    expect(busy.err).toContain('--out');
    expect(busy.err).toContain('is not empty');
    expect(existsSync(join(used, 'portbandit.db'))).toBe(false);

    const nowhere = join(data.dir, 'no-store');
    const out = join(data.dir, 'copy-none');
    const none = await runCli(['backup', '--data', nowhere, '--out', out]);
    expect(none.code).toBe(2);
    expect(none.err).toContain('--data');
    expect(none.err).toContain('holds no store');
    expect(existsSync(nowhere)).toBe(false);
    expect(existsSync(out)).toBe(false);

    const pg = await runCli(['backup', '--data', data.dir, '--out', out], {
      env: { ...process.env, PORTBANDIT_POSTGRES_URL: 'postgres://127.0.0.1:1/none' },
    });
    expect(pg.code).toBe(2);
    expect(pg.err).toContain('PORTBANDIT_POSTGRES_URL');
    expect(pg.err).toContain('pg_dump');
    expect(existsSync(out)).toBe(false);
  });

  it('takes one snapshot while another connection keeps writing: the copy holds a prefix of the commits, whole', async () => {
    const path = join(data.dir, 'busy.db');
    const store: Store = await openSqliteStore({ path });
    const ingest = (n: number) =>
      store.ingestScan({
        scan: scan(`busy-${n}`, `198.18.${(n >> 8) & 255}.${n & 255}`, 60_000 + n, [open(80, 'http', { product: `nginx ${n}` })]),
        events: [],
      });
    let written = 0;
    for (; written < 3000; written++) void ingest(written);
    await ingest(written++);
    let writing = true;
    // Commits keep coming, 50 at a time, until the copy is done.
    const writer = (async () => {
      while (writing) {
        await Promise.all(Array.from({ length: 50 }, () => ingest(written++)));
      }
    })();
    const target = join(data.dir, 'busy-copy.db');
    const seen: number[] = [];
    const result = await backupSqliteFile(path, target, { progressMs: 5, onProgress: (p) => seen.push(p.bytes) });
    writing = false;
    await writer;
    await store.close();
    expect(result.bytes).toBeGreaterThan(0);
    expect(seen.every((b, i) => i === 0 || b >= seen[i - 1]!)).toBe(true);
    const source = await historyOf(path);
    const copy = await historyOf(target);
    expect(source.size).toBe(written);
    expect(copy.size).toBeGreaterThanOrEqual(3001);
    expect(copy.size).toBeLessThan(source.size);
    // Commits are whole and in order: the copy is exactly the first N visits written.
    for (let n = 0; n < written; n++) expect(copy.has(`busy-${n}`)).toBe(n < copy.size);
    for (const [id, doc] of copy) expect(doc).toEqual(source.get(id));
    // A second copy to the same place is refused: a backup never overwrites.
    await expect(backupSqliteFile(path, target)).rejects.toThrow(/exists; a backup never overwrites/);
  });

  it('fails on a file that is not a database, naming it, and leaves nothing behind', async () => {
    const bogus = join(data.dir, 'bogus.db');
    writeFileSync(bogus, 'not a database, '.repeat(512));
    const target = join(data.dir, 'bogus-copy.db');
    const failure = await backupSqliteFile(bogus, target).catch((error: unknown) => error);
    expect(failure).toMatchObject({ code: 'PB_ERR_STORE', where: bogus });
    expect(String((failure as Error).message)).toMatch(/copying .*bogus\.db: file is not a database/);
    expect(existsSync(target)).toBe(false);
    expect(existsSync(`${target}.partial`)).toBe(false);
  });
});
