import { Writable } from 'node:stream';
import { expect, test } from 'vitest';
import { resolveConfig } from '../../src/coordinator/config.js';
import { startServer } from '../../src/coordinator/server.js';
import { createRng, shuffle } from '../../src/core/rng.js';
import type { ResultBatchItem, WorkItem } from '../../src/protocol/protocol.js';
import { runCli } from '../helpers/cli.js';
import { bearer, resultAsHost, tempDataDir } from './helpers.js';

/**
 * The real server (config, sweep timer every 50 ms, HTTP on loopback) while agents lease and
 * submit without pause and an operator edits everything at once, through the API and through
 * the CLI on the same data directory (another connection, as another process would): scope and
 * blocklist, policies of every strategy (budgets and rates), the cycle period, cycle restarts and
 * manual rescans. No request may fail with a 5xx, nothing may be logged as an error, and every
 * result the server acknowledged is stored. (A policy loaded by the CLI's edit once answered 500
 * to a lease served while the learner loaded it; that window is a few microtasks wide, so this
 * test rarely hits it: policy-book.test.ts holds it. 20-second runs with four agents, ~1,300
 * results and ~800 edits each, passed on three seeds.)
 */
test('edits through the API and the CLI while agents lease and submit: no 5xx, no error logged, every acknowledged result stored', async () => {
  const data = tempDataDir();
  const logged: string[] = [];
  const config = resolveConfig({ flags: { dataDir: data.dir, port: 0, sweepIntervalMs: 50 }, env: {} });
  const sink = new Writable({ write: (chunk, _e, done) => (logged.push(String(chunk)), done()) });
  const app = await startServer(config, { logger: { level: 'warn', stream: sink } }, new Writable({ write: (_c, _e, done) => done() }));
  const failures: string[] = [];
  /** Acknowledged results: scan id -> address. */
  const acknowledged = new Map<string, string>();
  try {
    const base = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`;
    const admin = (await app.coordinator.createAdminToken('t')).token;
    const call = async (method: string, path: string, token: string, body?: unknown) => {
      const res = await fetch(`${base}${path}`, {
        method,
        headers: { ...bearer(token), ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
      const text = await res.text();
      if (res.status >= 500) failures.push(`${method} ${path}: ${res.status} ${text}`);
      return { status: res.status, body: text === '' ? undefined : (JSON.parse(text) as unknown) };
    };
    const agentToken = async (name: string) =>
      ((await call('POST', '/api/v1/admin/agents', admin, { name })).body as { token: string }).token;
    await call('POST', '/api/v1/admin/scope', admin, { entries: [{ range: '198.18.60.0/27', tags: ['web'] }] });
    const agents = [await agentToken('a1'), await agentToken('a2')];
    // Hosts: every fourth address answers on a port derived from it (the item may not name it).
    const openOf = (ip: string) => {
      const last = Number(ip.split('.')[3]);
      return last % 4 === 0 ? [22, 80, 1000 + last] : [];
    };
    let stop = false;
    const agentLoop = async (token: string) => {
      while (!stop) {
        const got = await call('GET', '/api/v1/agent/work?max=8', token);
        const items = got.status === 200 ? ((got.body as { items?: WorkItem[] }).items ?? []) : [];
        if (items.length === 0) {
          await new Promise((resolve) => setTimeout(resolve, 20));
          continue;
        }
        const results = items.map((w) => resultAsHost(w, openOf, Date.now()));
        const sent = await call('POST', '/api/v1/agent/results/batch', token, { results });
        if (sent.status !== 200) continue;
        const answers = (sent.body as { results: ResultBatchItem[] }).results;
        for (const [i, r] of answers.entries()) {
          if (r.outcome === 'failed') failures.push(`result ${i} of a batch failed: ${JSON.stringify(r.error)}`);
          if (r.outcome === 'accepted' && r.scanId !== undefined) acknowledged.set(r.scanId, items[i]!.ip);
        }
      }
    };
    const random = createRng('edits-under-load');
    const rng = () => random.next();
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rng() * xs.length)]!;
    const tags = ['web', 'db', 'lab'];
    const strategies = ['top-k', 'adaptive', 'thompson', 'epsilon-greedy', 'ucb', 'fixed', 'random'];
    const ranges = ['198.18.60.0/27', '198.18.61.0/28', '198.18.62.1-198.18.62.9', '198.18.63.7'];
    const edits: Array<() => Promise<unknown>> = [
      () => call('POST', '/api/v1/admin/scope', admin, { entries: [{ range: pick(ranges), tags: [pick(tags)] }] }),
      () => call('POST', '/api/v1/admin/scope/remove', admin, { ranges: [pick(ranges)] }),
      () => call('POST', '/api/v1/admin/scope?list=blocklist', admin, { entries: [{ range: `198.18.60.${Math.floor(rng() * 32)}` }] }),
      () => runCli(['scope', 'add', pick(ranges), '--tag', pick(tags), '--data', data.dir]),
      () => runCli(['scope', 'remove', pick(ranges), '--data', data.dir]),
      () =>
        call('PUT', `/api/v1/admin/policies/${pick(tags)}`, admin, {
          strategy: pick(strategies),
          ...(rng() < 0.5 ? { budget: 5 + Math.floor(rng() * 60) } : { rate: 10 + Math.floor(rng() * 100) }),
        }),
      () =>
        runCli([
          'policy',
          'set',
          pick(tags),
          '--strategy',
          pick(strategies),
          '--budget',
          String(5 + Math.floor(rng() * 60)),
          '--data',
          data.dir,
        ]),
      () => call('DELETE', `/api/v1/admin/policies/${pick(tags)}`, admin),
      () =>
        call('PUT', '/api/v1/admin/policies/_default', admin, {
          strategy: pick(strategies),
          rate: 50,
          periodSeconds: 1 + Math.floor(rng() * 3),
        }),
      () => call('POST', '/api/v1/admin/cycle/restart', admin),
      () => call('POST', '/api/v1/admin/rescan', admin, { ips: ['198.18.60.4', '198.18.60.8'] }),
    ];
    const running = agents.map(agentLoop);
    const editsDone: number[] = [];
    const order = edits.map((_, i) => i);
    const until = Date.now() + 3000;
    while (Date.now() < until) {
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
    expect(acknowledged.size).toBeGreaterThan(50);
    const stored = new Set<string>();
    for (const ip of new Set(acknowledged.values())) {
      const res = await call('GET', `/api/v1/hosts/${ip}/history?limit=1000`, admin);
      for (const scan of (res.body as { items: { scanId: string }[] }).items) stored.add(scan.scanId);
    }
    expect([...acknowledged.keys()].filter((id) => !stored.has(id))).toEqual([]);
  } finally {
    await app.close();
    data.cleanup();
  }
}, 60_000);
