import { existsSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backfillIndex } from '../../src/store/backfill.js';
import { type ElasticsearchScanIndex, openElasticsearchScanIndex } from '../../src/store/elasticsearch-store.js';
import { openStore } from '../../src/store/open-store.js';
import type { ScanDocument, Store } from '../../src/store/types.js';
import { serveMemoryElasticsearch } from '../helpers/es-http.js';
import { runCli } from '../helpers/cli.js';
import { addScope, getWork, manualClock, openApp, resultFor, submit, tempDataDir, tokens } from './helpers.js';

async function all<T>(items: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of items) out.push(item);
  return out;
}

const ids = (scans: readonly ScanDocument[]) => scans.map((s) => s.scanId).sort();

// A coordinator on a real SQLite file stores visits and events with no search index; then
// `portbandit index backfill` sends them to an Elasticsearch double served over HTTP (the
// in-memory double: contract tests only, not evidence about a real cluster).
describe('portbandit index backfill', () => {
  const data = tempDataDir();
  const clock = manualClock();
  let es: Awaited<ReturnType<typeof serveMemoryElasticsearch>>;
  let app: FastifyInstance;
  let index: ElasticsearchScanIndex;

  beforeAll(async () => {
    app = await openApp(data.dir, clock.now);
    const t = await tokens(app);
    await addScope(app, t.admin, [{ range: '198.18.20.0/30', tags: ['lab'] }]);
    await app.coordinator.setPolicy('', { strategy: 'fixed', budget: 3, params: { ports: [22, 80, 3389] }, periodSeconds: null });
    // 12 visits of 4 hosts: three cycles, a port open in odd cycles (events: new, closed).
    for (let i = 0; i < 12; i++) {
      const w = (await getWork(app, t.agents[0]!))!;
      clock.advance(60_000);
      const res = await submit(app, t.agents[0]!, resultFor(w, (w.cycle ?? 0) % 2 === 1 ? [w.ports[0]!] : [], clock.now()));
      expect(res.statusCode).toBe(200);
    }
    await app.close();
    es = await serveMemoryElasticsearch();
    index = await openElasticsearchScanIndex({ node: es.url, prefix: 'pb' });
  });
  afterAll(async () => {
    await index?.close();
    await es?.close();
    data.cleanup();
  });

  /** The store's history, latest per host and events, read from its own file. */
  async function stored(): Promise<{ history: ScanDocument[]; latest: ScanDocument[]; events: number }> {
    const store = await openStore({ kind: 'sqlite', path: `${data.dir}/portbandit.db` });
    try {
      return {
        history: await all(store.exportHistory()),
        latest: (await store.search(undefined, { limit: 1000 })).items,
        events: (await store.readEvents({ limit: 1000 })).events.length,
      };
    } finally {
      await store.close();
    }
  }

  /** `portbandit index backfill` on the data directory into the double's `prefix`, plus `extra` flags. */
  const backfill = (prefix: string, ...extra: string[]) =>
    runCli(['index', 'backfill', '--data', data.dir, '--elasticsearch', es.url, '--elasticsearch-prefix', prefix, ...extra]);

  it('sends every stored visit, each host latest and every event; a second run changes nothing', async () => {
    const before = await stored();
    expect(before.history).toHaveLength(12);
    expect(before.latest).toHaveLength(4);
    expect(before.events).toBeGreaterThan(0);
    expect(await index.count(undefined, { view: 'history' })).toBe(0);
    const check = ['index', 'check', '--data', data.dir, '--elasticsearch', es.url, '--elasticsearch-prefix', 'pb'];
    const empty = await runCli(check);
    expect(empty.code).toBe(1);
    expect(empty.out).toBe(
      'store: 12 visits, 4 hosts, ' +
        `${before.events} events, ${before.latest.reduce((n, s) => n + s.ports.filter((p) => p.state === 'open').length, 0)} open ports\n` +
        'index: 0 visits, 0 hosts, 0 events, 0 open ports (pb-*)\noutbox: 0 records waiting\n' +
        'differs with nothing waiting: run `portbandit index backfill`\n',
    );

    const run = await backfill('pb', '--batch', '5');
    expect(run.err).toContain('index backfill: 12 visits into pb-*');
    expect(run.code).toBe(0);
    expect(run.out).toBe(`sent 12 visits (4 hosts' latest) and ${before.events} events to pb-*\n`);

    await index.refresh();
    expect(ids(await all(index.exportHistory()))).toEqual(ids(before.history));
    expect(ids((await index.search(undefined, { limit: 1000 })).items)).toEqual(ids(before.latest));
    expect((await index.readEvents({ limit: 1000 })).events).toHaveLength(before.events);
    const full = await runCli([...check, '--json']);
    expect(full.code).toBe(0);
    const verdict = JSON.parse(full.out) as { verdict: string; store: unknown; index: unknown; outbox: number };
    expect(verdict).toMatchObject({ verdict: 'in-step', outbox: 0 });
    expect(verdict.index).toEqual(verdict.store);

    const again = await backfill('pb');
    expect(again.code).toBe(0);
    await index.refresh();
    expect(await index.count(undefined, { view: 'history' })).toBe(12);
    expect(ids((await index.search(undefined, { limit: 1000 })).items)).toEqual(ids(before.latest));
    expect((await index.readEvents({ limit: 1000 })).events).toHaveLength(before.events);
  });

  it('--since sends the visits finished from then on; --no-events leaves events out', async () => {
    const other = await openElasticsearchScanIndex({ node: es.url, prefix: 'since' });
    try {
      const { history } = await stored();
      const from = history[8]!.finishedAt;
      const run = await backfill('since', '--since', String(from), '--no-events');
      expect(run.code).toBe(0);
      const expected = history.filter((s) => s.finishedAt >= from);
      expect(run.out).toMatch(new RegExp(`^sent ${expected.length} visits \\(\\d+ hosts' latest\\) and 0 events`));
      await other.refresh();
      expect(ids(await all(other.exportHistory()))).toEqual(ids(expected));
      expect((await other.readEvents({ limit: 1000 })).events).toHaveLength(0);
    } finally {
      await other.close();
    }
  });

  it('a visit the store deleted while it was being sent is removed from the index again', async () => {
    const store = await openStore({ kind: 'sqlite', path: `${data.dir}/portbandit.db` });
    const other = await openElasticsearchScanIndex({ node: es.url, prefix: 'race' });
    try {
      const history = await all(store.exportHistory());
      // A visit that is not its host's latest (retention never deletes a latest).
      const gone = history.find((s) => history.some((t) => t.ip === s.ip && t.finishedAt > s.finishedAt))!;
      // Retention between the read and the re-check: the store answers for `gone` until it was sent.
      let sent = false;
      const racing: Store = Object.create(store) as Store;
      racing.getScan = async (scanId) => (sent && scanId === gone.scanId ? undefined : store.getScan(scanId));
      const original = other.applyOutbox.bind(other);
      other.applyOutbox = async (records) => {
        await original(records);
        if (records.some((r) => r.kind === 'visit' && r.scan.scanId === gone.scanId)) sent = true;
      };
      const done = await backfillIndex(racing, other, { batchSize: 4, events: false });
      expect(done).toMatchObject({ visits: 12, deleted: 1, events: 0 });
      await other.refresh();
      const indexed = ids(await all(other.exportHistory()));
      expect(indexed).toHaveLength(11);
      expect(indexed).not.toContain(gone.scanId);
    } finally {
      await other.close();
      await store.close();
    }
  });

  it('names what is wrong: no cluster, a bad URL, a bad batch size', async () => {
    const env = { ...process.env, PORTBANDIT_ELASTICSEARCH_URL: '' };
    const none = await runCli(['index', 'backfill', '--data', data.dir], { env });
    expect(none.code).not.toBe(0);
    expect(none.err).toContain('--elasticsearch');
    const bad = await runCli(['index', 'backfill', '--data', data.dir, '--elasticsearch', '127.0.0.1:9200'], { env });
    expect(bad.code).not.toBe(0);
    expect(bad.err).toMatch(/--elasticsearch.*http\(s\) URL/su);
    const batch = await runCli(['index', 'backfill', '--data', data.dir, '--elasticsearch', es.url, '--batch', '0'], { env });
    expect(batch.code).not.toBe(0);
    expect(batch.err).toMatch(/--batch.*1-10000/su);
    const missing = `${data.dir}/nothing-here`;
    const nowhere = await runCli(['index', 'backfill', '--data', missing, '--elasticsearch', es.url], { env });
    expect(nowhere.code).not.toBe(0);
    expect(nowhere.err).toContain(`--data: ${missing} holds no store`);
    expect(existsSync(missing)).toBe(false);
    // A prefix another coordination database feeds is refused (its events would be skipped).
    const stranger = tempDataDir();
    try {
      await (await openStore({ kind: 'sqlite', path: `${stranger.dir}/portbandit.db` })).close();
      const owned = await runCli(['index', 'backfill', '--data', stranger.dir, '--elasticsearch', es.url, '--elasticsearch-prefix', 'pb'], {
        env,
      });
      expect(owned.code).not.toBe(0);
      expect(owned.err).toMatch(/pb-\* are fed by another coordination database/u);
    } finally {
      stranger.cleanup();
    }
  });
});
