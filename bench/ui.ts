import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildApp } from '../src/coordinator/app.js';
import { resolveConfig } from '../src/coordinator/config.js';
import { createRng } from '../src/core/rng.js';
import type { ScannedPort } from '../src/store/types.js';

const PORTS: readonly [number, string, string][] = [
  [22, 'ssh', 'OpenSSH'],
  [80, 'http', 'nginx'],
  [443, 'https', 'nginx'],
  [3306, 'mysql', 'MySQL'],
  [8080, 'http-proxy', 'Jetty'],
];

function benchIp(h: number): string {
  return `198.18.${(h >> 8) & 255}.${h & 255}`;
}

function percentile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

/**
 * UI benchmark: a coordinator over SQLite with PB_BENCH_UI_HOSTS (default 5,000) hosts, two scans
 * each, then PB_BENCH_UI_REPEATS (30) sequential renders of the dashboard, a search page and a
 * host page through `app.inject`, next to the JSON API routes that carry the same data
 * (stats, search page, host history) measured in the same run. Prints p50/p99 and the ratios.
 */
export async function runUiBenchmark(env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const hosts = Math.min(65_536, Number(env.PB_BENCH_UI_HOSTS ?? 5000));
  const repeats = Number(env.PB_BENCH_UI_REPEATS ?? 30);
  const dir = mkdtempSync(join(tmpdir(), 'pb-bench-ui-'));
  const config = resolveConfig({ flags: { dataDir: dir, logLevel: 'silent' }, env: {} });
  const app = await buildApp({ config, sweepTimer: false });
  try {
    const admin = (await app.coordinator.createAdminToken('bench')).token;
    const headers = { authorization: `Bearer ${admin}` };
    await app.inject({
      method: 'PUT',
      url: '/api/v1/admin/scope/import',
      headers: { ...headers, 'content-type': 'text/plain' },
      payload: '198.18.0.0/16,bench\n',
    });
    const rng = createRng('bench-ui');
    const start = Date.UTC(2026, 10, 22);
    for (let round = 0; round < 2; round++) {
      for (let h = 0; h < hosts; h++) {
        const ports: ScannedPort[] = [];
        for (const [port, service, product] of PORTS) {
          if (rng.next() < 0.3)
            ports.push({
              port,
              state: 'open',
              service,
              product,
              version: `${1 + round}.0`,
              cpes: [],
              scripts: [{ id: 'banner', output: `${product} <ready>` }],
            });
        }
        const finishedAt = start + round * 43_200_000 + h * 1000;
        await app.coordinator.store.ingestScan({
          scan: {
            scanId: `s${round}-${h}`,
            ip: benchIp(h),
            tags: ['bench'],
            agentId: 'agent-bench',
            startedAt: finishedAt - 5000,
            finishedAt,
            epoch: round,
            cycle: round + 1,
            ports,
            preflight: 'connect',
            probedPorts: '22,80,443,3306,8080',
            timings: { total: 5000 },
          },
        });
      }
    }
    const ip = benchIp(Math.floor(hosts / 2));
    const pairs: Array<[string, string, string]> = [
      ['dashboard', '/ui', '/api/v1/stats'],
      ['search', '/ui/search?q=port%3A22%20service%3Assh', '/api/v1/search?q=port%3A22%20service%3Assh&limit=25'],
      ['host', `/ui/host/${ip}`, `/api/v1/hosts/${ip}/history`],
    ];
    console.log(`ui: ${hosts} hosts x 2 scans; ${repeats} sequential requests per route (after one warm-up)`);
    for (const [name, page, api] of pairs) {
      const time = async (url: string): Promise<number[]> => {
        const res = await app.inject({ method: 'GET', url, headers });
        if (res.statusCode !== 200) throw new Error(`${url}: ${res.statusCode}`);
        const out: number[] = [];
        for (let i = 0; i < repeats; i++) {
          const t = performance.now();
          await app.inject({ method: 'GET', url, headers });
          out.push(performance.now() - t);
        }
        return out.sort((a, b) => a - b);
      };
      const p = await time(page);
      const a = await time(api);
      console.log(
        `  ${name.padEnd(9)} page p50 ${percentile(p, 0.5).toFixed(1)} ms p99 ${percentile(p, 0.99).toFixed(1)} ms | API ${api.split('?')[0]} p50 ${percentile(a, 0.5).toFixed(1)} ms p99 ${percentile(a, 0.99).toFixed(1)} ms | page/API p50 ${(percentile(p, 0.5) / percentile(a, 0.5)).toFixed(2)}x`,
      );
    }
  } finally {
    await app.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
