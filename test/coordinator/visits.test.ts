import Database from 'better-sqlite3';
import type { FastifyInstance } from 'fastify';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ResultSubmission, WorkItem } from '../../src/protocol/protocol.js';
import { openSqliteStore } from '../../src/store/sqlite-store.js';
import type { ScanDocument } from '../../src/store/types.js';
import { addScope, bearer, getWork, manualClock, openApp, resultFor, submit, tempDataDir, tokens } from './helpers.js';

describe('a host visit is one scan, and unknown is not closed', () => {
  let data: ReturnType<typeof tempDataDir>;
  let app: FastifyInstance;
  let t: Awaited<ReturnType<typeof tokens>>;
  const clock = manualClock();

  beforeEach(async () => {
    data = tempDataDir();
    app = await openApp(data.dir, clock.now);
    t = await tokens(app);
  });
  afterEach(async () => {
    await app.close();
    data.cleanup();
  });

  const admin = (url: string) => app.inject({ method: 'GET', url, headers: bearer(t.admin) });
  const events = async () =>
    (await admin('/api/v1/events')).body
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l))
      .filter((e) => e.kind) as Array<{ kind: string; port?: number; scanId: string }>;
  const history = async (ip: string) => (await admin(`/api/v1/hosts/${ip}/history`)).json().items as ScanDocument[];

  /** A fixed list of ports for one host, no follow-ups, back-to-back cycles. */
  async function fixedPolicy(ports: number[]): Promise<void> {
    await app.coordinator.setPolicy('', { strategy: 'fixed', budget: ports.length, params: { ports }, periodSeconds: null });
  }

  async function visit(answer: (w: WorkItem) => Partial<ResultSubmission>): Promise<{ work: WorkItem; response: Record<string, unknown> }> {
    const w = (await getWork(app, t.agents[0]!))!;
    clock.advance(60_000);
    const res = await submit(app, t.agents[0]!, { ...resultFor(w, [], clock.now()), ...answer(w) });
    expect(res.statusCode, res.body).toBe(200);
    return { work: w, response: res.json() };
  }

  it('stores all rounds of a visit as one scan, and reports no change inside a visit', async () => {
    await addScope(app, t.admin, [{ range: '198.18.5.1', tags: ['web'] }]);
    await app.coordinator.setPolicy('web', { strategy: 'adaptive', budget: 40, params: { sweepShare: 0, followUp: true } });
    const w0 = (await getWork(app, t.agents[0]!))!;
    const open0 = w0.ports.slice(0, 2);
    const r0 = await submit(app, t.agents[0]!, resultFor(w0, open0, clock.now()));
    expect(r0.json()).toMatchObject({ accepted: true, followUp: true, scanId: w0.leaseId });
    const w1 = (await getWork(app, t.agents[0]!))!;
    expect(w1).toMatchObject({ ip: w0.ip, round: 1 });
    const r1 = await submit(app, t.agents[0]!, resultFor(w1, [w1.ports[0]!], clock.now() + 10));
    expect(r1.json()).toMatchObject({ accepted: true, scanId: w0.leaseId });
    // A retried submit of the follow-up is recognised as a duplicate of the visit.
    expect((await submit(app, t.agents[0]!, resultFor(w1, [w1.ports[0]!], clock.now() + 10))).json()).toMatchObject({
      duplicate: true,
      scanId: w0.leaseId,
    });

    const scans = await history(w0.ip);
    expect(scans).toHaveLength(1);
    expect(scans[0]!.scanId).toBe(w0.leaseId);
    expect(scans[0]!.rounds).toEqual([w0.leaseId, w1.leaseId]);
    expect(scans[0]!.ports.map((p) => p.port)).toEqual([...open0, w1.ports[0]!].sort((a, b) => a - b));
    expect(scans[0]!.probedPorts.split(',').length).toBeGreaterThan(0);
    // Search sees the follow-up's port on the visit; the events are three new services, once.
    const found = (await admin(`/api/v1/search?q=${encodeURIComponent(`port:${w1.ports[0]}`)}`)).json();
    expect(found.items.map((s: ScanDocument) => s.scanId)).toEqual([w0.leaseId]);
    const kinds = (await events()).map((e) => e.kind);
    expect(kinds.filter((k) => k === 'service-new')).toHaveLength(3);
    expect(kinds.filter((k) => k === 'service-closed')).toHaveLength(0);
    expect((await events()).every((e) => e.scanId === w0.leaseId)).toBe(true);
  });

  it('keeps open ports open through an nmap time-out and never raises service-closed for unknown ports', async () => {
    await addScope(app, t.admin, [{ range: '198.18.5.2' }]);
    await fixedPolicy([22, 80, 443]);
    const full = (port: number) => ({ port, state: 'open' as const, service: port === 22 ? 'ssh' : 'http', product: 'p', version: '1' });
    await visit(() => ({ ports: [full(22), full(80)] }));
    // nmap timed out: the preflight's open ports come without detail; 443 was never observed.
    const { response } = await visit(() => ({
      ports: [{ port: 22, state: 'open' }],
      unknownPorts: '80,443',
      incomplete: 'nmap gave up at its host timeout (60 s)',
    }));
    expect(response).toMatchObject({ accepted: true, events: 0 });
    const [partial] = await history('198.18.5.2');
    expect(partial).toMatchObject({ incomplete: 'nmap gave up at its host timeout (60 s)', unknownPorts: '80,443', knownOpen: [22, 80] });
    // The next full visit compares with the last KNOWN state: 80 still open, nothing new.
    expect((await visit(() => ({ ports: [full(22), full(80)] }))).response).toMatchObject({ events: 0 });
    // A real close is still reported.
    const closed = await visit(() => ({ ports: [full(22)] }));
    expect(closed.response).toMatchObject({ events: 1 });
    expect((await events()).filter((e) => e.kind === 'service-closed').map((e) => e.port)).toEqual([80]);
  });

  it('rejects unknown ports that were not handed out', async () => {
    await addScope(app, t.admin, [{ range: '198.18.5.3' }]);
    await fixedPolicy([22]);
    const w = (await getWork(app, t.agents[0]!))!;
    const res = await submit(app, t.agents[0]!, { ...resultFor(w, [], clock.now()), unknownPorts: '22,23' });
    expect(res.statusCode).toBe(400);
    expect(res.json().message).toMatch(/port 23 was not in the work item/);
  });

  it('derives the budget from a rate and a period, paces the cycle, and warns when discovery is unfunded', async () => {
    await addScope(app, t.admin, [{ range: '198.18.6.0/24' }]);
    // The default policy: 1,000 probes/s over 24 h for 256 addresses funds every port.
    const [def] = app.coordinator.budgets();
    expect(def).toMatchObject({ tag: '', addresses: 256, rate: 1000, periodSeconds: 86_400, budget: 65_535, fullPassCycles: 1 });
    expect(def!.warning).toBeUndefined();
    // 100 probes per visit on the same scope cannot find unlisted ports in reasonable time.
    await app.coordinator.setPolicy('', { strategy: 'adaptive', budget: 100 });
    const [small] = app.coordinator.budgets();
    expect(small).toMatchObject({ budget: 100, fullPassCycles: 656 });
    expect(small!.warning).toMatch(/656 cycles .* A rate of 195 probes\/s would fund a full sweep of every address each cycle/);
    const explained = (await admin('/api/v1/admin/policies/_default/learned')).json();
    expect(explained.budget.warning).toBe(small!.warning);
  });

  it('migrates a store of per-round scans into one scan per visit without losing a port or an event', async () => {
    const path = join(data.dir, 'old.db');
    const store = await openSqliteStore({ path });
    const base = { ip: '198.18.7.1', tags: [], agentId: 'agent_x', epoch: 3, cycle: 3, preflight: 'connect' as const, timings: {} };
    const port = (p: number) => ({ port: p, protocol: 'tcp' as const, state: 'open' as const, cpes: [], scripts: [] });
    await store.ingestScan({
      scan: { ...base, scanId: 'lease_a', startedAt: 1000, finishedAt: 2000, ports: [port(22)], probedPorts: '22,80' },
      events: [{ kind: 'service-new', at: 2000, ip: base.ip, scanId: 'lease_a', tags: [], port: 22 }],
    });
    await store.ingestScan({
      scan: { ...base, scanId: 'lease_b', startedAt: 1000, finishedAt: 3000, ports: [port(22), port(8080)], probedPorts: '22,80,8080' },
      events: [{ kind: 'service-new', at: 3000, ip: base.ip, scanId: 'lease_b', tags: [], port: 8080 }],
    });
    await store.ingestScan({
      scan: { ...base, scanId: 'lease_c', epoch: 4, cycle: 4, startedAt: 5000, finishedAt: 6000, ports: [port(22)], probedPorts: '22' },
    });
    await store.close();
    const db = new Database(path);
    db.pragma('user_version = 2');
    db.close();

    const migrated = await openSqliteStore({ path });
    const scans = (await migrated.hostHistory('198.18.7.1')).items;
    expect(scans.map((s) => s.scanId)).toEqual(['lease_c', 'lease_a']);
    const visit = scans[1]!;
    expect(visit).toMatchObject({ rounds: ['lease_a', 'lease_b'], startedAt: 1000, finishedAt: 3000, probedPorts: '22,80,8080' });
    expect(visit.ports.map((p) => p.port)).toEqual([22, 8080]);
    expect((await migrated.readEvents()).events.map((e) => [e.scanId, e.port])).toEqual([
      ['lease_a', 22],
      ['lease_a', 8080],
    ]);
    expect((await migrated.getLatestScan('198.18.7.1'))?.scanId).toBe('lease_c');
    const { parseQuery } = await import('../../src/store/query.js');
    expect((await migrated.search(parseQuery('port:8080'), { view: 'history' })).items.map((s) => s.scanId)).toEqual(['lease_a']);
    await migrated.close();
  });
});
