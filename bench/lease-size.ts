/**
 * Whole-port leases in process (issue 13): what one costs to store, to send and to take back.
 * `npx tsx bench/lease-size.ts` prints one JSON line: bytes per stored lease (the SQLite row's
 * document), bytes per wire item (with and without the agent's `Portbandit-Features:
 * port-ranges` header), the time to lease 32 whole-port items (requests of max=32 until 32 are
 * held; fastify inject, so routing, schema and serialisation included) and the time to take one
 * back (one result per lease through POST /api/v1/agent/results, median and mean). A fresh SQLite
 * data directory per run; the default policy's rate funds all 65,535 ports per address of a /27.
 * Run it alternately on two builds to compare them: the machine's load moves every timing.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { buildApp } from '../src/coordinator/app.js';
import { resolveConfig } from '../src/coordinator/config.js';

const WANT = 32;

async function run(rangesHeader: boolean): Promise<Record<string, number>> {
  const dir = mkdtempSync(join(tmpdir(), 'pb-lease-size-'));
  const now = () => Date.UTC(2026, 10, 23, 2, 0, 0);
  const config = resolveConfig({ flags: { dataDir: dir, logLevel: 'silent' }, env: {} });
  const app = await buildApp({ config, now, sweepTimer: false });
  try {
    const admin = (await app.coordinator.createAdminToken('bench')).token;
    const agent = (await app.coordinator.createAgent('bench-agent')).token;
    const auth = (token: string) => ({ authorization: `Bearer ${token}` });
    const scope = await app.inject({
      method: 'POST',
      url: '/api/v1/admin/scope?list=scope',
      headers: auth(admin),
      payload: { entries: [{ range: '198.18.6.0/27' }, { range: '198.18.6.32/28' }] },
    });
    if (scope.statusCode !== 200) throw new Error(scope.body);
    const headers = { ...auth(agent), ...(rangesHeader ? { 'portbandit-features': 'port-ranges' } : {}) };
    type Item = { leaseId: string; ip: string; ports: number[]; portRanges?: string; issuedAt: number };
    const items: Item[] = [];
    let wireBytes = 0;
    const t0 = process.hrtime.bigint();
    while (items.length < WANT) {
      const res = await app.inject({ method: 'GET', url: `/api/v1/agent/work?max=${WANT - items.length}`, headers });
      if (res.statusCode !== 200) throw new Error(res.body);
      const got = (res.json() as { items: Item[] }).items;
      if (got.length === 0) break;
      wireBytes += res.rawPayload.length;
      items.push(...got);
    }
    const leaseMs = Number(process.hrtime.bigint() - t0) / 1e6;
    const ports = items[0]!.portRanges ?? items[0]!.ports.length;
    const db = new Database(join(dir, 'portbandit.db'), { readonly: true });
    const row = db.prepare('SELECT AVG(length(doc)) AS bytes, COUNT(*) AS n FROM leases').get() as { bytes: number; n: number };
    db.close();
    const takes: number[] = [];
    for (const item of items) {
      const body = {
        leaseId: item.leaseId,
        ip: item.ip,
        status: 'up',
        startedAt: item.issuedAt + 1000,
        finishedAt: item.issuedAt + 2000,
        preflight: 'masscan',
        ports: [22, 80, 443].map((port) => ({ port, state: 'open', service: 'http' })),
      };
      const s = process.hrtime.bigint();
      const res = await app.inject({ method: 'POST', url: '/api/v1/agent/results', headers: auth(agent), payload: body });
      takes.push(Number(process.hrtime.bigint() - s) / 1e6);
      if (res.statusCode !== 200) throw new Error(res.body);
    }
    takes.sort((a, b) => a - b);
    return {
      items: items.length,
      portsOfFirst: typeof ports === 'number' ? ports : -1,
      storedLeaseBytes: Math.round(row.bytes),
      storedLeases: row.n,
      wireBytesPerItem: Math.round(wireBytes / items.length),
      lease32Ms: Math.round(leaseMs),
      takeBackMedianMs: Number(takes[takes.length >> 1]!.toFixed(1)),
      takeBackMeanMs: Number((takes.reduce((a, b) => a + b, 0) / takes.length).toFixed(1)),
    };
  } finally {
    await app.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

const header = process.env.PB_LEASE_SIZE_HEADER !== '0';
// One warm-up run (JIT, SQLite page cache), then the measured one.
await run(header);
console.log(JSON.stringify({ header, ...(await run(header)) }));
