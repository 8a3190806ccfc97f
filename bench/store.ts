import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { createRng } from '../src/core/rng.js';
import { parseQuery } from '../src/store/query.js';
import { latestAnsweredScan, latestAnsweredScanPaged } from '../src/store/answered.js';
import { openSqliteStore } from '../src/store/sqlite-store.js';
import type { IngestInput, ScannedPort, Store } from '../src/store/types.js';

const PORTS: readonly [number, string, string | undefined][] = [
  [22, 'ssh', 'OpenSSH'],
  [80, 'http', 'nginx'],
  [443, 'https', 'nginx'],
  [25, 'smtp', 'Postfix smtpd'],
  [3389, 'ms-wbt-server', undefined],
  [8080, 'http-proxy', undefined],
  [3306, 'mysql', 'MySQL'],
];
const TAGS = [['dmz'], ['corp'], ['corp', 'office'], ['iot'], []];

/** Host h's address inside 198.18.0.0/15 (benchmark data never leaves it). */
function benchIp(h: number): string {
  return `198.${18 + ((h >> 16) & 1)}.${(h >> 8) & 255}.${h & 255}`;
}

function percentile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

/**
 * SQLite store benchmark: ingests one scan per host of a /16 (PB_BENCH_STORE_HOSTS, default
 * 65,536) through the public API with PB_BENCH_STORE_CLIENTS (100) concurrent submitters, then
 * times searches over latest-per-host. Baselines in the same run: the same documents inserted
 * into a bare one-column table (same batching), and a bare `SELECT doc ... LIMIT 50` page read;
 * the ratios are the cost of the store's indexing and of query evaluation.
 */
export async function runStoreBenchmark(env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const hosts = Number(env.PB_BENCH_STORE_HOSTS ?? 65536);
  const clients = Number(env.PB_BENCH_STORE_CLIENTS ?? 100);
  const repeats = Number(env.PB_BENCH_STORE_REPEATS ?? 30);
  const dir = mkdtempSync(join(tmpdir(), 'pb-bench-store-'));
  const rng = createRng('bench-store');
  const inputs: IngestInput[] = Array.from({ length: hosts }, (_, h) => {
    const ports: ScannedPort[] = [];
    for (const [port, service, product] of PORTS) {
      if (rng.next() < (port === 80 || port === 443 ? 0.4 : 0.12))
        ports.push({ port, state: 'open', service, ...(product ? { product } : {}), cpes: [], scripts: [] });
    }
    const finishedAt = Date.UTC(2026, 10, 1) + h * 1000;
    return {
      scan: {
        scanId: `bench-${h}`,
        ip: benchIp(h),
        tags: TAGS[rng.int(TAGS.length)]!,
        agentId: `agent-${h % 8}`,
        startedAt: finishedAt - 30_000,
        finishedAt,
        epoch: 0,
        cycle: 1,
        ports,
        preflight: 'masscan',
        probedPorts: '1-1024',
        timings: { total: 30_000 },
      },
    };
  });
  let store: Store | undefined;
  try {
    // Baseline: the bare insert, one transaction per `clients` rows (what group commit achieves at best).
    const raw = new Database(join(dir, 'raw.db'));
    raw.pragma('journal_mode = WAL');
    raw.pragma('synchronous = NORMAL');
    raw.exec('CREATE TABLE scans (row INTEGER PRIMARY KEY, doc TEXT NOT NULL)');
    const insert = raw.prepare('INSERT INTO scans (doc) VALUES (?)');
    const insertBatch = raw.transaction((batch: IngestInput[]) => {
      for (const input of batch) insert.run(JSON.stringify(input.scan));
    });
    let t = performance.now();
    for (let i = 0; i < hosts; i += clients) {
      insertBatch(inputs.slice(i, i + clients));
      await new Promise((resolve) => setImmediate(resolve));
    }
    const rawRate = hosts / ((performance.now() - t) / 1000);

    store = await openSqliteStore({ path: join(dir, 'store.db') });
    const s = store;
    let next = 0;
    const ingestCpuStart = process.cpuUsage();
    t = performance.now();
    await Promise.all(
      Array.from({ length: clients }, async () => {
        while (next < hosts) await s.ingestScan(inputs[next++]!);
      }),
    );
    const storeRate = hosts / ((performance.now() - t) / 1000);
    const ingestCpu = process.cpuUsage(ingestCpuStart);
    console.log(
      `ingest: ${hosts} scans, ${clients} concurrent submitters: ${storeRate.toFixed(0)} scans/s (cpu ${((ingestCpu.user + ingestCpu.system) / 1000 / hosts).toFixed(3)} ms/scan); bare insert ${rawRate.toFixed(0)} rows/s; ratio ${(storeRate / rawRate).toFixed(2)}`,
    );

    // Wall-clock percentiles plus mean CPU time: on a shared machine the wall time includes waiting for a core.
    const timeIt = async (work: () => Promise<unknown> | unknown): Promise<{ p50: number; p99: number; cpu: number }> => {
      const samples: number[] = [];
      const cpuStart = process.cpuUsage();
      for (let i = 0; i < repeats; i++) {
        const start = performance.now();
        await work();
        samples.push(performance.now() - start);
      }
      const cpu = process.cpuUsage(cpuStart);
      samples.sort((a, b) => a - b);
      return { p50: percentile(samples, 0.5), p99: percentile(samples, 0.99), cpu: (cpu.user + cpu.system) / 1000 / repeats };
    };
    const rawPage = raw.prepare('SELECT doc FROM scans ORDER BY row DESC LIMIT 50');
    const base = await timeIt(() => rawPage.all().map((row) => JSON.parse((row as { doc: string }).doc) as unknown));
    console.log(`baseline bare page of 50 (no filter, no count): p50 ${base.p50.toFixed(2)} ms, p99 ${base.p99.toFixed(2)} ms`);
    const queries = [
      '',
      'port:22',
      'tag:dmz',
      'port:3389 ip:198.18.0.0/17',
      'service:https -product:nginx',
      'nginx OR openssh',
      `ctime:>2026-11-01T12:00:00Z port:25`,
    ];
    for (const text of queries) {
      const query = parseQuery(text);
      let total = 0;
      const timing = await timeIt(async () => {
        total = (await s.search(query, { limit: 50 })).total;
      });
      console.log(
        `search ${JSON.stringify(text || '(all)')} over ${hosts} hosts: ${total} matches, page of 50 + exact total: p50 ${timing.p50.toFixed(2)} ms, p99 ${timing.p99.toFixed(2)} ms, cpu ${timing.cpu.toFixed(2)} ms, ${(timing.p50 / base.p50).toFixed(1)}x baseline`,
      );
    }
    let cursor: string | undefined;
    for (let i = 0; i < 20; i++) cursor = (await s.search(parseQuery('port:443'), { limit: 50, ...(cursor ? { cursor } : {}) })).nextCursor;
    const deep = await timeIt(() => s.search(parseQuery('port:443'), { limit: 50, ...(cursor ? { cursor } : {}) }));
    console.log(
      `search "port:443" page 21 by cursor: p50 ${deep.p50.toFixed(2)} ms, p99 ${deep.p99.toFixed(2)} ms, cpu ${deep.cpu.toFixed(2)} ms`,
    );
    const top = await timeIt(() => s.topPorts({ limit: 10 }));
    const topTag = await timeIt(() => s.topPorts({ limit: 10, tag: 'dmz' }));
    const counts = await timeIt(() => s.counts());
    console.log(
      `topPorts: p50 ${top.p50.toFixed(1)} ms (cpu ${top.cpu.toFixed(1)}); topPorts tag:dmz: p50 ${topTag.p50.toFixed(1)} ms (cpu ${topTag.cpu.toFixed(1)}); counts: p50 ${counts.p50.toFixed(1)} ms (cpu ${counts.cpu.toFixed(1)})`,
    );
    raw.close();
    await answeredBaselines(s, hosts);
  } finally {
    await store?.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * A visit's baseline (the host's latest answered scan) for hosts down at each of their 20 newest
 * visits, most of a sparse scope after 20 cycles: 2,000 such hosts after the `after` others, the
 * store's SQL fast path against reading the latest scan and a page of history, alternately.
 */
async function answeredBaselines(store: Store, after: number): Promise<void> {
  const n = 2000;
  const ips = Array.from({ length: n }, (_, h) => benchIp(after + h));
  for (const [h, ip] of ips.entries()) {
    for (let c = 0; c < 20; c++) {
      const finishedAt = Date.UTC(2026, 10, 2) + c * 86_400_000 + h;
      await store.ingestScan({
        scan: {
          scanId: `bench-down-${h}-${c}`,
          ip,
          tags: [],
          agentId: 'agent-0',
          startedAt: finishedAt - 30_000,
          finishedAt,
          epoch: c,
          cycle: c + 1,
          ports: [],
          host: { status: 'down' },
          preflight: 'masscan',
          probedPorts: '1-65535',
          timings: { total: 30_000 },
        },
      });
    }
  }
  const cpuPerCall = async (read: (s: Store, ip: string) => Promise<unknown>): Promise<number> => {
    const t0 = process.cpuUsage();
    for (const ip of ips) await read(store, ip);
    const d = process.cpuUsage(t0);
    return (d.user + d.system) / n;
  };
  const paged: number[] = [];
  const fast: number[] = [];
  for (let round = 0; round < 3; round++) {
    paged.push(await cpuPerCall(latestAnsweredScanPaged));
    fast.push(await cpuPerCall(latestAnsweredScan));
  }
  const best = (xs: number[]) => Math.min(...xs);
  console.log(
    `latest answered scan of ${n} hosts down at their 20 newest visits: ${best(fast).toFixed(0)} us CPU per call (SQL), ${best(paged).toFixed(0)} us reading the latest scan and a page of history (best of 3 alternating rounds; ${(best(paged) / best(fast)).toFixed(1)}x)`,
  );
}
