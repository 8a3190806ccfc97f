import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { SubmitResponse, WorkItem } from '../../src/protocol/protocol.js';
import { openElasticsearchScanIndex } from '../../src/store/elasticsearch-store.js';
import { serveMemoryElasticsearch } from '../helpers/es-http.js';
import { postgresMissing, usePostgres } from '../helpers/postgres.js';
import { cliProcessArgs } from '../helpers/cli-process.js';
import { runCli } from '../helpers/cli.js';

/**
 * `portbandit serve --elasticsearch URL` as a process, on SQLite, with the in-memory Elasticsearch
 * double served over HTTP on loopback (test/helpers/es-http.ts; a contract double, not a real
 * cluster): results are fed into the index by the process's feeder; then, with the cluster
 * rejecting every bulk request (429), the process is killed with SIGKILL while results wait in
 * the outbox, and the restarted process delivers every one of them.
 */
const root = join(import.meta.dirname, '../..');
const data = mkdtempSync(join(tmpdir(), 'pb-serve-es-'));
afterAll(() => rmSync(data, { recursive: true, force: true }));

interface Serve {
  child: ChildProcess;
  url: string;
  stderr: () => string;
}

function startServe(esUrl: string, extra: readonly string[] = [], dir = data): Promise<Serve> {
  const child = spawn(
    process.execPath,
    [...cliProcessArgs(), 'serve', '--data', dir, '--port', '0', '--elasticsearch', esUrl, '--log-level', 'warn', ...extra],
    {
      cwd: root,
      env: { ...process.env, PORTBANDIT_SWEEP_MS: '200' },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let err = '';
  child.stdout!.resume();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`serve did not start: ${err}`)), 40_000);
    child.stderr!.on('data', (chunk: Buffer) => {
      err += chunk.toString();
      const m = /listening on (http:\/\/\S+?) /.exec(err) ?? /API docs: (http:\/\/\S+?)\/docs/.exec(err);
      if (m) {
        clearTimeout(timer);
        resolve({ child, url: m[1]!, stderr: () => err });
      }
    });
    child.once('exit', (code) => reject(new Error(`serve exited ${code}: ${err}`)));
  });
}

async function call<T>(serve: Serve, method: string, path: string, token?: string, body?: unknown): Promise<T> {
  const response = await fetch(`${serve.url}${path}`, {
    method,
    headers: {
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
    },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${text}`);
  return JSON.parse(text) as T;
}

async function until(what: string, check: () => Promise<boolean>, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/**
 * Scan every host of the scope once (follow-up rounds included); returns the stored visits' ids.
 * Rounds of visits in `earlier` (a follow-up of the last cycle still queued) are served but not
 * counted, so `hosts` new visits are stored.
 */
async function scanAll(serve: Serve, agent: string, hosts: number, earlier: ReadonlySet<string> = new Set()): Promise<Set<string>> {
  const seen = new Set<string>();
  const visits = new Set<string>();
  await until(`${hosts} hosts scanned`, async () => {
    const { work } = await call<{ work: WorkItem | null }>(serve, 'GET', '/api/v1/agent/work', agent);
    if (work) {
      const now = Date.now();
      const open = work.ports.includes(22) ? [22] : [work.ports[0]!];
      const ack = await call<SubmitResponse>(serve, 'POST', '/api/v1/agent/results', agent, {
        leaseId: work.leaseId,
        ip: work.ip,
        status: 'up',
        startedAt: now - 10,
        finishedAt: now,
        preflight: 'connect',
        ports: open.map((port) => ({ port, state: 'open', service: 'ssh', cpes: [], scripts: [] })),
        timings: { total: 10 },
      });
      expect(ack.accepted).toBe(true);
      if (!earlier.has(ack.scanId)) {
        seen.add(work.ip);
        visits.add(ack.scanId);
      }
    }
    return seen.size >= hosts;
  });
  return visits;
}

describe('serve --elasticsearch (SQLite + the Elasticsearch double over HTTP)', () => {
  it('feeds results into the index; killed with SIGKILL while the cluster refuses bulk writes, the restarted process delivers what waited', async () => {
    const es = await serveMemoryElasticsearch();
    let serve = await startServe(es.url);
    try {
      const admin = /\b(pbk_\S+)/u.exec(serve.stderr())?.[1];
      expect(admin).toBeDefined();
      const { token: agent } = await call<{ token: string }>(serve, 'POST', '/api/v1/admin/agents', admin, { name: 'agent-1' });
      await call(serve, 'POST', '/api/v1/admin/scope?list=scope', admin, { entries: [{ range: '198.18.9.0/29', tags: ['lab'] }] });

      const first = await scanAll(serve, agent, 8);
      await until(
        'the outbox to drain',
        async () => (await call<{ outbox: { depth: number } }>(serve, 'GET', '/healthz')).outbox.depth === 0,
      );
      const found = await call<{ total: number }>(serve, 'GET', '/api/v1/search?q=tag:lab%20port:22', admin);
      expect(found.total).toBe(8);

      // The cluster sheds every bulk request; the next cycle's results wait in the outbox.
      es.cluster.rejectBulk = { remaining: 1_000_000, as: 'request' };
      await call(serve, 'POST', '/api/v1/admin/scope?list=scope', admin, { entries: [{ range: '198.18.10.0/30', tags: ['lab'] }] });
      await call(serve, 'POST', '/api/v1/admin/cycle/restart', admin, {});
      const second = await scanAll(serve, agent, 12, first);
      expect(second.size).toBe(12);
      await until('a failed feed', async () => (await call<{ outbox: { failing: number } }>(serve, 'GET', '/healthz')).outbox.failing > 0);
      const waiting = (await call<{ outbox: { depth: number } }>(serve, 'GET', '/healthz')).outbox.depth;
      expect(waiting).toBeGreaterThan(0);
      serve.child.kill('SIGKILL');
      await once(serve.child, 'exit');
      // What an operator sees meanwhile: the index behind the store by what the outbox holds.
      const behind = await runCli(['index', 'check', '--data', data, '--elasticsearch', es.url, '--json']);
      expect(behind.code).toBe(0);
      expect(JSON.parse(behind.out)).toMatchObject({ verdict: 'behind', outbox: waiting });

      es.cluster.rejectBulk = undefined;
      serve = await startServe(es.url);
      await until(
        'the restarted feeder to drain the outbox',
        async () => (await call<{ outbox: { depth: number } }>(serve, 'GET', '/healthz')).outbox.depth === 0,
      );
      const index = await openElasticsearchScanIndex({ node: es.url });
      try {
        for (const id of [...first, ...second]) expect((await index.getScan(id))?.scanId).toBe(id);
        expect(await index.count(undefined, { view: 'latest' })).toBe(12);
      } finally {
        await index.close();
      }
      const inStep = await runCli(['index', 'check', '--data', data, '--elasticsearch', es.url, '--json']);
      expect(inStep.code).toBe(0);
      expect(JSON.parse(inStep.out)).toMatchObject({ verdict: 'in-step', outbox: 0, store: { scans: 20, hosts: 12 } });
    } finally {
      if (serve.child.exitCode === null) {
        serve.child.kill('SIGTERM');
        await once(serve.child, 'exit');
      }
      await es.close();
    }
  }, 120_000);
});

const missing = postgresMissing();
if (missing) console.warn(`serve-elasticsearch: PostgreSQL part skipped: ${missing}`);

describe.skipIf(missing !== undefined)('serve --postgres --elasticsearch: two coordinators, one feeder', () => {
  const pg = usePostgres();

  it('one of two coordinators feeds; killed with SIGKILL, the other takes the role over and feeds what both stored', async () => {
    const es = await serveMemoryElasticsearch();
    const schema = pg.freshSchema();
    const dirs = [0, 1].map(() => mkdtempSync(join(tmpdir(), 'pb-serve-pges-')));
    const servers: Serve[] = [];
    try {
      for (const dir of dirs) servers.push(await startServe(es.url, ['--postgres', pg.url(), '--postgres-schema', schema], dir));
      const admin = servers.map((s) => /\b(pbk_\S+)/u.exec(s.stderr())?.[1]).find((t) => t !== undefined);
      expect(admin).toBeDefined();
      const { token: agent } = await call<{ token: string }>(servers[0]!, 'POST', '/api/v1/admin/agents', admin, { name: 'agent-1' });
      await call(servers[0]!, 'POST', '/api/v1/admin/scope?list=scope', admin, { entries: [{ range: '198.18.11.0/29', tags: ['lab'] }] });
      const health = async (s: Serve) => await call<{ store: string; outbox: { depth: number; active: boolean } }>(s, 'GET', '/healthz');
      await until('one feeder elected', async () => (await Promise.all(servers.map(health))).filter((h) => h.outbox.active).length === 1);
      expect((await health(servers[0]!)).store).toBe('postgres');
      const feeder = (await health(servers[0]!)).outbox.active ? 0 : 1;

      // The elected feeder stops feeding (the cluster sheds every bulk request) and both store results.
      es.cluster.rejectBulk = { remaining: 1_000_000, as: 'request' };
      const visits = new Set<string>();
      for (const s of servers) for (const id of await scanAll(s, agent, 4)) visits.add(id);
      expect((await health(servers[1 - feeder]!)).outbox.depth).toBeGreaterThan(0);
      servers[feeder]!.child.kill('SIGKILL');
      await once(servers[feeder]!.child, 'exit');
      es.cluster.rejectBulk = undefined;

      const survivor = servers[1 - feeder]!;
      await until(
        'the survivor to take the feeder role and drain the outbox',
        async () => {
          const h = await health(survivor);
          return h.outbox.active && h.outbox.depth === 0;
        },
        60_000,
      );
      const index = await openElasticsearchScanIndex({ node: es.url });
      try {
        for (const id of visits) expect((await index.getScan(id))?.scanId).toBe(id);
      } finally {
        await index.close();
      }
    } finally {
      for (const s of servers) {
        if (s.child.exitCode === null && s.child.signalCode === null) {
          s.child.kill('SIGTERM');
          await once(s.child, 'exit');
        }
      }
      for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
      await es.close();
    }
  }, 150_000);
});
