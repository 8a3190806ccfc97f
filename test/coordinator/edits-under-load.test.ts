import { join } from 'node:path';
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { resolveConfig } from '../../src/coordinator/config.js';
import { startServer } from '../../src/coordinator/server.js';
import { createRng, shuffle } from '../../src/core/rng.js';
import type { ResultBatchItem, WorkItem } from '../../src/protocol/protocol.js';
import { runCli } from '../helpers/cli.js';
import { postgresMissing, usePostgres } from '../helpers/postgres.js';
import { bearer, resultAsHost, tempDataDir } from './helpers.js';

/**
 * The real server (config, sweep timer every 50 ms, HTTP on loopback; on PostgreSQL two of them
 * on one schema, the agents and the edits alternating between them) while agents lease and
 * submit without pause and an operator edits everything at once, through the API and through
 * the CLI on the same store (another connection, as another process would): scope and
 * blocklist, policies of every strategy (budgets and rates, some naming agent groups), agents'
 * groups, the cycle period, cycle restarts and manual rescans; the agents now and then give
 * their items back or answer them one by one. No request may fail with a 5xx, nothing may be
 * logged as an error, every result the server acknowledged is stored, and (PostgreSQL) no
 * address is leased while another agent holds it. Run for 20 s with four agents (~1,100-1,800 results
 * and ~700-950 edits a run), the PostgreSQL case found leases answered 500 in 3 of 4 seeds (a
 * policy deleted while a lease read the host's last visit; a delete and a set interleaved);
 * policy-races.test.ts holds each of them, as policy-book.test.ts holds the one CI met on SQLite
 * (a lease served while the learner loaded a policy the CLI had set: a window of microtasks this
 * test rarely hits). After the fixes, 4 of 4 seeds passed at 20 s, and 3 of 3 with the agents'
 * releases, single answers and groups added.
 */
interface Backend {
  /**
   * The store refuses a second live lease for an address (PostgreSQL's constraint). SQLite does
   * not: a manual rescan of an address the cycle hands out in the same batch, or one in flight,
   * is leased twice (seen here; the batch tests rely on it).
   */
  readonly oneLeasePerAddress: boolean;
  /** Configuration flags of the i-th server. */
  flags(i: number, dataDir: string): Record<string, unknown>;
  /** The CLI's store arguments and environment. */
  cli(dataDir: string): { args: string[]; env: NodeJS.ProcessEnv };
}

async function editsUnderLoad(backend: Backend, servers: number): Promise<void> {
  const data = tempDataDir();
  const logged: string[] = [];
  const sink = new Writable({ write: (chunk, _e, done) => (logged.push(String(chunk)), done()) });
  const apps: Awaited<ReturnType<typeof startServer>>[] = [];
  const failures: string[] = [];
  /** Acknowledged results: scan id -> address. */
  const acknowledged = new Map<string, string>();
  try {
    for (let i = 0; i < servers; i++) {
      const config = resolveConfig({ flags: { port: 0, sweepIntervalMs: 50, ...backend.flags(i, data.dir) }, env: {} });
      apps.push(await startServer(config, { logger: { level: 'warn', stream: sink } }, new Writable({ write: (_c, _e, done) => done() })));
    }
    const bases = apps.map((app) => `http://127.0.0.1:${(app.server.address() as { port: number }).port}`);
    let turn = 0;
    const admin = (await apps[0]!.coordinator.createAdminToken('t')).token;
    const cliStore = backend.cli(data.dir);
    const cli = (args: string[]) => runCli([...args, ...cliStore.args], { env: cliStore.env });
    const call = async (method: string, path: string, token: string, body?: unknown) => {
      const base = bases[turn++ % bases.length]!;
      const res = await fetch(`${base}${path}`, {
        method,
        headers: { ...bearer(token), ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
      const text = await res.text();
      if (res.status >= 500) failures.push(`${method} ${path}: ${res.status} ${text}`);
      return { status: res.status, body: text === '' ? undefined : (JSON.parse(text) as unknown) };
    };
    await call('POST', '/api/v1/admin/scope', admin, { entries: [{ range: '198.18.60.0/27', tags: ['web'] }] });
    const made = [
      (await call('POST', '/api/v1/admin/agents', admin, { name: 'a1' })).body as { id: string; token: string },
      (await call('POST', '/api/v1/admin/agents', admin, { name: 'a2' })).body as { id: string; token: string },
    ];
    const agents = made.map((a) => a.token);
    /** Addresses an agent holds a lease on and has not answered yet (none may be leased twice). */
    const held = new Map<string, string>();
    // Hosts: every fourth address answers on a port derived from it (the item may not name it).
    const openOf = (ip: string) => {
      const last = Number(ip.split('.')[3]);
      return last % 4 === 0 ? [22, 80, 1000 + last] : [];
    };
    const random = createRng('edits-under-load');
    const rng = () => random.next();
    let stop = false;
    const agentLoop = async (token: string) => {
      while (!stop) {
        const got = await call('GET', '/api/v1/agent/work?max=8', token);
        const items = got.status === 200 ? ((got.body as { items?: WorkItem[] }).items ?? []) : [];
        if (items.length === 0) {
          await new Promise((resolve) => setTimeout(resolve, 20));
          continue;
        }
        for (const w of items) {
          const holder = held.get(w.ip);
          if (holder !== undefined && backend.oneLeasePerAddress)
            failures.push(`${w.ip} leased to ${token.slice(0, 8)} while ${holder.slice(0, 8)} holds it`);
          held.set(w.ip, token);
        }
        // Mostly a batch of results; now and then the items given back, or answered one by one.
        const choice = rng();
        for (const w of items) held.delete(w.ip);
        if (choice < 0.1) {
          await call('POST', '/api/v1/agent/release', token, { leaseIds: items.map((w) => w.leaseId) });
          continue;
        }
        const results = items.map((w) => resultAsHost(w, openOf, Date.now()));
        const answers: ResultBatchItem[] = [];
        if (choice < 0.2)
          for (const result of results) {
            const one = await call('POST', '/api/v1/agent/results', token, result);
            answers.push(one.status === 200 ? { outcome: 'accepted', ...(one.body as { scanId?: string }) } : { outcome: 'rejected' });
          }
        else {
          const sent = await call('POST', '/api/v1/agent/results/batch', token, { results });
          if (sent.status !== 200) continue;
          answers.push(...(sent.body as { results: ResultBatchItem[] }).results);
        }
        for (const [i, r] of answers.entries()) {
          if (r.outcome === 'failed') failures.push(`result ${i} of a batch failed: ${JSON.stringify(r.error)}`);
          if (r.outcome === 'accepted' && r.scanId !== undefined) acknowledged.set(r.scanId, items[i]!.ip);
        }
      }
    };
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rng() * xs.length)]!;
    const tags = ['web', 'db', 'lab'];
    const strategies = ['top-k', 'adaptive', 'thompson', 'epsilon-greedy', 'ucb', 'fixed', 'random'];
    const ranges = ['198.18.60.0/27', '198.18.61.0/28', '198.18.62.1-198.18.62.9', '198.18.63.7'];
    const edits: Array<() => Promise<unknown>> = [
      () => call('POST', '/api/v1/admin/scope', admin, { entries: [{ range: pick(ranges), tags: [pick(tags)] }] }),
      () => call('POST', '/api/v1/admin/scope/remove', admin, { ranges: [pick(ranges)] }),
      () => call('POST', '/api/v1/admin/scope?list=blocklist', admin, { entries: [{ range: `198.18.60.${Math.floor(rng() * 32)}` }] }),
      () => cli(['scope', 'add', pick(ranges), '--tag', pick(tags)]),
      () => cli(['scope', 'remove', pick(ranges)]),
      () =>
        call('PUT', `/api/v1/admin/policies/${pick(tags)}`, admin, {
          strategy: pick(strategies),
          ...(rng() < 0.5 ? { budget: 5 + Math.floor(rng() * 60) } : { rate: 10 + Math.floor(rng() * 100) }),
        }),
      () => cli(['policy', 'set', pick(tags), '--strategy', pick(strategies), '--budget', String(5 + Math.floor(rng() * 60))]),
      () => call('DELETE', `/api/v1/admin/policies/${pick(tags)}`, admin),
      () =>
        call('PUT', '/api/v1/admin/policies/_default', admin, {
          strategy: pick(strategies),
          rate: 50,
          periodSeconds: 1 + Math.floor(rng() * 3),
        }),
      () => call('POST', '/api/v1/admin/cycle/restart', admin),
      () => call('POST', '/api/v1/admin/rescan', admin, { ips: ['198.18.60.4', '198.18.60.8'] }),
      // Agent groups: a tag's policy may name them, and an agent's may change under it.
      () =>
        call('PUT', `/api/v1/admin/policies/${pick(tags)}`, admin, {
          strategy: pick(strategies),
          budget: 20,
          groups: [pick(['inside', 'outside'])],
        }),
      () =>
        call('PUT', `/api/v1/admin/agents/${pick(made).id}/groups`, admin, { groups: rng() < 0.3 ? [] : [pick(['inside', 'outside'])] }),
    ];
    const running = agents.map(agentLoop);
    const editsDone: number[] = [];
    const order = edits.map((_, i) => i);
    // At least 3 s, a whole round of every kind of edit and 30 acknowledged results, at most
    // 60 s. The results come in bursts: for seconds at a time the edits leave the agents no work
    // (policies naming groups they are not in, a paced cycle waiting for its period); in CI,
    // with lint, the type-check and the lab beside it, the PostgreSQL case once took 23 s for 50.
    const started = Date.now();
    const enough = () => Date.now() - started >= 3000 && editsDone.length >= edits.length && acknowledged.size >= 30;
    while (!enough() && Date.now() - started < 60_000) {
      // Every kind of edit in each round, in a shuffled order.
      if (editsDone.length % edits.length === 0) shuffle(order, random);
      const i = order[editsDone.length % edits.length]!;
      const out = (await edits[i]!()) as { code?: number; err?: string } | undefined;
      if (out?.code !== undefined && out.code !== 0 && out.code !== 2) failures.push(`CLI edit ${i}: exit ${out.code}: ${out.err}`);
      editsDone.push(i);
      await new Promise((resolve) => setTimeout(resolve, rng() * 30));
    }
    stop = true;
    await Promise.all(running);
    expect(failures).toEqual([]);
    expect(logged.filter((line) => /"level":(50|60)/.test(line))).toEqual([]);
    expect(new Set(editsDone).size).toBe(edits.length);
    expect(acknowledged.size).toBeGreaterThanOrEqual(30);
    const stored = new Set<string>();
    for (const ip of new Set(acknowledged.values())) {
      const res = await call('GET', `/api/v1/hosts/${ip}/history?limit=1000`, admin);
      for (const scan of (res.body as { items: { scanId: string }[] }).items) stored.add(scan.scanId);
    }
    expect([...acknowledged.keys()].filter((id) => !stored.has(id))).toEqual([]);
  } finally {
    for (const app of apps) await app.close();
    data.cleanup();
  }
}

const title = 'edits through the API and the CLI while agents lease and submit: no 5xx, no error logged, every acknowledged result stored';

describe('one coordinator on SQLite', () => {
  it(
    title,
    () =>
      editsUnderLoad(
        { oneLeasePerAddress: false, flags: (_i, dir) => ({ dataDir: dir }), cli: (dir) => ({ args: ['--data', dir], env: process.env }) },
        1,
      ),
    120_000,
  );
});

const missing = postgresMissing();
describe.skipIf(missing !== undefined)('two coordinators on one PostgreSQL', () => {
  const pg = usePostgres();
  it(
    title,
    () => {
      const schema = pg.freshSchema();
      return editsUnderLoad(
        {
          oneLeasePerAddress: true,
          flags: (i, dir) => ({ dataDir: join(dir, `c${i}`), postgresUrl: pg.url(), postgresSchema: schema }),
          cli: () => ({ args: [], env: { ...process.env, PORTBANDIT_POSTGRES_URL: pg.url(), PORTBANDIT_POSTGRES_SCHEMA: schema } }),
        },
        2,
      );
    },
    120_000,
  );
});
