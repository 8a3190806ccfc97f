import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { planHostRetention } from '../../src/coordinator/retention.js';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../src/coordinator/app.js';
import { resolveConfig } from '../../src/coordinator/config.js';
import type { RetentionReport } from '../../src/coordinator/retention-runner.js';
import type { ScanDocument, Store } from '../../src/store/types.js';
import { runCli } from '../helpers/cli.js';
import { open, scan } from '../store/conformance.js';
import { bearer, manualClock, tempDataDir } from './helpers.js';

const DAY = 86_400_000;

/** `count` visits of `ip`, one every `everyMs` back from `newest`, newest first. */
async function seedHistory(
  store: Store,
  ip: string,
  tags: string[],
  newest: number,
  count: number,
  everyMs: number,
  extra: (i: number) => Partial<ScanDocument> = () => ({}),
): Promise<string[]> {
  const ids: string[] = [];
  for (let i = count - 1; i >= 0; i--) {
    const id = `${ip.replaceAll('.', '-')}-${String(i).padStart(3, '0')}`;
    await store.ingestScan({ scan: scan(id, ip, newest - i * everyMs, [open(22, 'ssh')], { tags, ...extra(i) }) });
    ids.push(id);
  }
  return ids.reverse();
}

async function historyIds(store: Store, ip: string): Promise<string[]> {
  return (await store.hostHistory(ip, { limit: 1000 })).items.map((s) => s.scanId);
}

describe('retention on a real coordinator (SQLite, HTTP)', () => {
  let data: ReturnType<typeof tempDataDir>;
  let app: FastifyInstance;
  let admin: string;
  const lines: string[] = [];
  const clock = manualClock(Date.UTC(2026, 11, 1, 12, 0, 0));

  beforeEach(async () => {
    data = tempDataDir();
    lines.length = 0;
    const config = resolveConfig({ flags: { dataDir: data.dir, logLevel: 'info' }, env: {} });
    app = await buildApp({
      config,
      now: clock.now,
      sweepTimer: false,
      logger: { level: 'info', stream: { write: (line: string) => void lines.push(line) } },
    });
    admin = (await app.coordinator.createAdminToken('t')).token;
  });
  afterEach(async () => {
    await app.close();
    data.cleanup();
  });

  async function setRetention(tag: string, retention: object | null): Promise<void> {
    const res = await app.inject({
      method: 'PUT',
      url: `/api/v1/admin/policies/${tag}`,
      headers: bearer(admin),
      payload: { strategy: 'top-k', budget: 100, rate: null, retention },
    });
    expect(res.statusCode, res.body).toBe(200);
  }

  it('reports a dry run without deleting, then drops exactly that; keeps the latest, the latest answered, event- and lease-referenced visits, and untouched tags', async () => {
    const store = app.coordinator.store;
    const now = clock.now();
    await setRetention('dmz', { keepLast: 3, keepDays: 30, dailyAfterDays: 5 });
    // 60 days of visits every 8 hours; the newest two visits are silent (down).
    const dmz = await seedHistory(store, '198.18.4.1', ['dmz'], now - 1000, 180, 8 * 3_600_000, (i) =>
      i < 2 ? { host: { status: 'down' } } : {},
    );
    const lab = await seedHistory(store, '198.18.4.2', ['lab'], now - 1000, 20, 5 * DAY);
    const referenced = dmz[120]!; // 40 days old: past keepDays
    await store.appendEvents([{ kind: 'service-new', at: now, ip: '198.18.4.1', scanId: referenced, tags: ['dmz'], port: 22 }]);
    const baseline = dmz[100]!;
    await store.putLease({
      id: 'lease-x',
      ip: '198.18.4.1',
      agentId: 'a',
      portRanges: '22',
      tags: ['dmz'],
      session: { baselineScanId: baseline },
      issuedAt: now,
      deadline: now + 60_000,
      round: 0,
      reason: 'cycle',
    });

    const dry = await app.inject({ method: 'GET', url: '/api/v1/admin/retention', headers: bearer(admin) });
    expect(dry.statusCode).toBe(200);
    const report = dry.json() as RetentionReport;
    expect(report).toMatchObject({ dryRun: true, hosts: 2, visits: 200 });
    expect(report.dropped).toBeGreaterThan(100);
    expect(report.byPolicy).toEqual([
      { tag: '', kept: 20, dropped: 0 },
      { tag: 'dmz', kept: 180 - report.dropped, dropped: report.dropped },
    ]);
    expect(await historyIds(store, '198.18.4.1')).toHaveLength(180); // nothing deleted

    const run = await app.inject({ method: 'POST', url: '/api/v1/admin/retention/run', headers: bearer(admin) });
    expect(run.statusCode).toBe(200);
    expect((run.json() as RetentionReport).dropped).toBe(report.dropped);
    const left = new Set(await historyIds(store, '198.18.4.1'));
    expect(left.size).toBe(180 - report.dropped);
    for (const s of report.sample) expect(left.has(s.scanId)).toBe(false);
    expect(left.has(dmz[0]!)).toBe(true); // latest (down)
    expect(left.has(dmz[2]!)).toBe(true); // latest answered
    expect(left.has(referenced)).toBe(true);
    expect(left.has(baseline)).toBe(true);
    // Within 5 days: every visit; 5-30 days: one per day; past 30 days: only the protected ones.
    for (const [i, id] of dmz.entries()) {
      const age = 1000 + i * 8 * 3_600_000;
      if (age <= 5 * DAY) expect(left.has(id), `${id} is ${age / DAY} d old`).toBe(true);
      if (age > 30 * DAY) expect(left.has(id)).toBe(id === referenced || id === baseline);
    }
    const daily = [...left]
      .map((id) => dmz.indexOf(id))
      .filter((i) => 1000 + i * 8 * 3_600_000 > 5 * DAY && 1000 + i * 8 * 3_600_000 <= 30 * DAY);
    const days = new Set(daily.map((i) => Math.floor((now - 1000 - i * 8 * 3_600_000) / DAY)));
    expect(daily.length).toBe(days.size);
    expect(await historyIds(store, '198.18.4.2')).toEqual(lab);
    // A second pass finds nothing more to drop.
    expect((await app.retention.run({ dryRun: false })).dropped).toBe(0);
  });

  it('runs in the background in bounded steps of 100 hosts, logging progress, at most one pass an hour', async () => {
    const store = app.coordinator.store;
    const now = clock.now();
    expect(await app.retention.step()).toBeUndefined(); // no rule drops anything: no pass
    await setRetention('dmz', { keepLast: 1 });
    for (let h = 0; h < 150; h++) await seedHistory(store, `198.18.5.${h}`, ['dmz'], now - 1000, 3, DAY);
    const first = (await app.retention.step())!;
    expect(first).toMatchObject({ hosts: 100, dropped: 200 });
    expect((await store.counts()).scans).toBe(450 - 200);
    const second = (await app.retention.step())!;
    expect(second).toMatchObject({ hosts: 150, dropped: 300 });
    expect((await store.counts()).scans).toBe(150);
    const logged = lines.map((l) => JSON.parse(l) as { msg: string; dropped?: number });
    expect(logged.filter((l) => l.msg.startsWith('retention pass')).map((l) => [l.msg, l.dropped])).toEqual([
      ['retention pass started', undefined],
      ['retention pass in progress', 200],
      ['retention pass finished', 300],
    ]);
    await store.ingestScan({ scan: scan('late', '198.18.5.0', now - 500, [open(22, 'ssh')], { tags: ['dmz'] }) });
    expect(await app.retention.step()).toBeUndefined(); // within the hour
    clock.advance(3_600_000);
    expect((await app.retention.step())!.dropped).toBe(1);
  });

  it('over random histories in the real store: what is left is exactly the plan, and the latest and event-referenced visits all survive', async () => {
    const store = app.coordinator.store;
    const now = clock.now();
    let run = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.array(fc.record({ ageH: fc.integer({ min: 0, max: 24 * 120 }), ref: fc.integer({ min: 0, max: 9 }) }), {
            minLength: 1,
            maxLength: 25,
          }),
          { minLength: 1, maxLength: 3 },
        ),
        fc.record(
          {
            keepLast: fc.integer({ min: 1, max: 4 }),
            keepDays: fc.integer({ min: 20, max: 90 }),
            dailyAfterDays: fc.integer({ min: 0, max: 10 }),
            weeklyAfterDays: fc.integer({ min: 10, max: 19 }),
          },
          { requiredKeys: [] },
        ),
        async (hosts, rule) => {
          run++;
          await setRetention('dmz', rule);
          const expected = new Map<string, Set<string>>();
          const referenced: string[] = [];
          for (const [h, visits] of hosts.entries()) {
            const ip = `198.18.10.${(run * 3 + h) % 250}`;
            const docs = visits.map((v, i) =>
              scan(`r${run}-h${h}-${i}`, ip, now - v.ageH * 3_600_000 - i, [open(22, 'ssh')], { tags: ['dmz'] }),
            );
            for (const d of docs) await store.ingestScan({ scan: d });
            const refs = docs.filter((_d, i) => visits[i]!.ref === 0).map((d) => d.scanId);
            if (refs.length > 0)
              await store.appendEvents(
                refs.map((scanId) => ({ kind: 'service-new' as const, at: now, ip, scanId, tags: ['dmz'], port: 22 })),
              );
            referenced.push(...refs);
            expected.set(ip, new Set());
          }
          // Everything of these hosts (earlier runs may have used the same addresses) is planned from the store.
          const protect = new Set((await store.readEvents({ limit: 10_000 })).events.map((e) => e.scanId));
          for (const ip of expected.keys()) {
            const all = (await store.hostHistory(ip, { limit: 1000 })).items;
            const plan = planHostRetention(
              all.map((d) => ({ scanId: d.scanId, finishedAt: d.finishedAt, tags: d.tags, down: false })),
              () => rule,
              protect,
              now,
            );
            expected.set(ip, new Set(plan.keep.map((v) => v.scanId)));
          }
          const latestBefore = new Map(
            await Promise.all([...expected.keys()].map(async (ip) => [ip, (await store.getLatestScan(ip))!.scanId] as const)),
          );
          await app.retention.run({ dryRun: false });
          for (const [ip, keep] of expected) {
            expect(new Set(await historyIds(store, ip))).toEqual(keep);
            expect((await store.getLatestScan(ip))!.scanId).toBe(latestBefore.get(ip));
            expect(keep.has(latestBefore.get(ip)!)).toBe(true);
          }
          for (const id of referenced) expect(await store.getScan(id), `event-referenced ${id} dropped`).toBeDefined();
        },
      ),
      { numRuns: 15 },
    );
  }, 120_000);

  it('refuses a bad retention rule with the field named, and keeps the stored policy', async () => {
    await setRetention('dmz', { keepLast: 2 });
    const bad = await app.inject({
      method: 'PUT',
      url: '/api/v1/admin/policies/dmz',
      headers: bearer(admin),
      payload: { strategy: 'top-k', retention: { dailyAfterDays: 9, weeklyAfterDays: 3 } },
    });
    expect(bad.statusCode).toBe(400);
    expect(bad.json()).toMatchObject({ code: 'PB_ERR_RETENTION_RULE' });
    expect(bad.json().message).toMatch(/^policy\(dmz\)\.retention\.weeklyAfterDays: weekly thinning/u);
    const unknownField = await app.inject({
      method: 'PUT',
      url: '/api/v1/admin/policies/dmz',
      headers: bearer(admin),
      payload: { strategy: 'top-k', retention: { keepForever: true } },
    });
    expect(unknownField.statusCode).toBe(400);
    expect(app.coordinator.policy('dmz')!.retention).toEqual({ keepLast: 2 });
  });
});

describe('portbandit retention (CLI)', () => {
  let data: ReturnType<typeof tempDataDir>;
  beforeEach(() => {
    data = tempDataDir();
  });
  afterEach(() => data.cleanup());

  it('sets rules with policy set, reports with --dry-run and applies, on --data and on --server', async () => {
    const d = ['--data', data.dir];
    expect((await runCli(['policy', 'set', 'dmz', '--strategy', 'top-k', '--budget', '50', '--keep-last', '2', ...d])).code).toBe(0);
    const bad = await runCli(['policy', 'set', 'dmz', '--thin-daily-after', '9', '--thin-weekly-after', '2', ...d]);
    expect(bad.code).toBe(2);
    expect(bad.err).toContain('weeklyAfterDays');
    // History written through the store of the data directory.
    const config = resolveConfig({ flags: { dataDir: data.dir, logLevel: 'silent' }, env: {} });
    let app = await buildApp({ config, sweepTimer: false, logger: false });
    const now = Date.now();
    await seedHistory(app.coordinator.store, '198.18.6.1', ['dmz'], now, 5, DAY);
    await app.close();

    const dry = await runCli(['retention', '--dry-run', '--json', ...d]);
    expect(dry.code).toBe(0);
    expect(JSON.parse(dry.out)).toMatchObject({ dryRun: true, visits: 5, dropped: 3 });
    expect(dry.err).toContain('retention: 1 hosts, 5 visits, 3 to drop');

    app = await buildApp({ config, sweepTimer: false, logger: false });
    const adminToken = (await app.coordinator.createAdminToken('cli')).token;
    const tokenFile = join(data.dir, 'admin.token');
    writeFileSync(tokenFile, adminToken);
    await app.listen({ host: '127.0.0.1', port: 0 });
    try {
      const address = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`;
      const remoteDry = await runCli(['retention', '--dry-run', '--json', '--server', address, '--token-file', tokenFile]);
      expect(JSON.parse(remoteDry.out)).toMatchObject({ dryRun: true, dropped: 3 });
      const applied = await runCli(['retention', '--server', address, '--token-file', tokenFile]);
      expect(applied.code).toBe(0);
      expect(applied.out).toContain('kept 2');
      expect(applied.out).toContain('dropped 3');
      expect(await historyIds(app.coordinator.store, '198.18.6.1')).toHaveLength(2);
      const wrongToken = join(data.dir, 'wrong.token');
      writeFileSync(wrongToken, 'nope');
      const refused = await runCli(['retention', '--dry-run', '--server', address, '--token-file', wrongToken]);
      expect(refused.code).toBe(2);
    } finally {
      await app.close();
    }
  });
});
