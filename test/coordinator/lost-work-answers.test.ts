import { type Server, type Socket, connect, createServer } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { Agent } from '../../agent/index.js';
import { CoordinatorClient } from '../../agent/coordinator-client.js';
import { buildApp, databasePath } from '../../src/coordinator/app.js';
import { resolveConfig } from '../../src/coordinator/config.js';
import { WORK_ABANDONED_HEADER, WORK_REQUEST_HEADER } from '../../src/protocol/index.js';
import type { Store } from '../../src/store/index.js';
import { openSqliteStore } from '../../src/store/sqlite-store.js';
import { addScope, bearer, postgresCoordinators, tempDataDir, tokens } from './helpers.js';
import { within } from '../helpers/net.js';
import { standInScanConfig } from '../helpers/stand-ins.js';
import { postgresMissing, usePostgres } from '../helpers/postgres.js';

/**
 * Leases made for an agent that never sees them: it gave up waiting (its request timed out while
 * the coordinator was slow), or the answer was lost on the way. Either way the hosts must not sit
 * leased until the lease expires (15 minutes by default) while no one scans them. A real
 * coordinator over HTTP on loopback, a real SQLite store (slowed where a test says), the agent's
 * real client, and a TCP proxy that cuts an answer after the coordinator wrote it.
 */

/**
 * A TCP proxy to `port` that passes answers through, or (mode `cut`) swallows them and closes both
 * sides; mode `cut-work` does that to the answers of work requests only.
 */
async function cuttingProxy(port: number): Promise<{ url: string; mode: 'pass' | 'cut' | 'cut-work'; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const state = {
    url: '',
    mode: 'pass' as 'pass' | 'cut' | 'cut-work',
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  const server: Server = createServer((client) => {
    const upstream = connect(port, '127.0.0.1');
    sockets.add(client).add(upstream);
    client.on('error', () => {}).on('close', () => upstream.destroy());
    upstream.on('error', () => {}).on('close', () => client.destroy());
    client.pipe(upstream);
    // The path of the last request sent on this connection (one at a time: HTTP/1.1 without pipelining).
    let path = '';
    client.on('data', (chunk: Buffer) => {
      const line = /^(?:GET|POST|PUT|DELETE) (\S+)/.exec(chunk.toString('latin1'));
      if (line) path = line[1]!;
    });
    upstream.on('data', (chunk: Buffer) => {
      if (state.mode === 'pass' || (state.mode === 'cut-work' && !path.startsWith('/api/v1/agent/work'))) client.write(chunk);
      // The coordinator has written its whole answer (a small JSON) by now: it goes nowhere.
      else setTimeout(() => client.destroy(), 100);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  state.url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  return state;
}

describe('lease requests whose answer never reaches the agent', () => {
  const data = tempDataDir();
  let store: Store;
  let app: FastifyInstance;
  let url: string;
  let admin = '';
  let agents: string[] = [];
  /** Milliseconds each lease write waits (0: none): a slow store. */
  let slowLeaseWrites = 0;
  const addresses = Array.from({ length: 8 }, (_, i) => `127.0.5.${i + 1}`);

  beforeAll(async () => {
    const sqlite = await openSqliteStore({ path: databasePath(data.dir), checkpointIntervalMs: 0 });
    store = sqlite;
    const slowed = new Proxy(sqlite, {
      get(target, property) {
        const value = Reflect.get(target, property, target) as unknown;
        if (typeof value !== 'function') return value;
        if (property === 'putLease' || property === 'putLeases')
          return async (...args: unknown[]) => {
            if (slowLeaseWrites > 0) await new Promise((resolve) => setTimeout(resolve, slowLeaseWrites));
            return (value as (...a: unknown[]) => unknown).apply(target, args);
          };
        return (value as (...a: unknown[]) => unknown).bind(target);
      },
    });
    const config = resolveConfig({ flags: { dataDir: data.dir, logLevel: 'silent' }, env: {} });
    app = await buildApp({ config, now: Date.now, sweepTimer: false, store: slowed });
    url = await app.listen({ host: '127.0.0.1', port: 0 });
    const t = await tokens(app, 2);
    admin = t.admin;
    agents = t.agents;
    await addScope(app, admin, [{ range: '127.0.5.1-127.0.5.8', tags: ['loop'] }]);
    // Small items: two ports each (no scan runs here; the addresses are only leased).
    const res = await app.inject({
      method: 'PUT',
      url: '/api/v1/admin/policies/_default',
      headers: bearer(admin),
      payload: { strategy: 'fixed', params: { ports: [22, 80] }, budget: 2 },
    });
    expect(res.statusCode, res.body).toBe(200);
  });

  afterAll(async () => {
    await app?.close();
    await store?.close();
    data.cleanup();
  });

  /** Give back every lease and start the cycle over, so each test begins with nothing leased. */
  async function reset(): Promise<void> {
    slowLeaseWrites = 0;
    const held = await store.listLeases();
    for (const agentId of new Set(held.map((l) => l.agentId)))
      await app.coordinator.releaseLeases(
        agentId,
        held.filter((l) => l.agentId === agentId).map((l) => l.id),
      );
    while ((await store.dequeueWork(100)).length > 0);
    const res = await app.inject({ method: 'POST', url: '/api/v1/admin/cycle/restart', headers: bearer(admin) });
    expect(res.statusCode, res.body).toBe(200);
    expect(await store.countLeases()).toBe(0);
  }

  test('an agent that gave up waiting (a slow store): the leases made for it are queued again at once, and all of them reach the next request', async () => {
    await reset();
    slowLeaseWrites = 600;
    const gaveUp = await fetch(`${url}/api/v1/agent/work?max=2`, {
      headers: { ...bearer(agents[0]!), [WORK_REQUEST_HEADER]: 'slow-request-1' },
      signal: AbortSignal.timeout(150),
    }).then(
      () => 'answered',
      (error: Error) => error.name,
    );
    expect(gaveUp).toBe('TimeoutError');
    // The two leases are written after the agent left; then given back, not held for 15 minutes.
    await within(5_000, async () => (await store.countQueuedWork()) === 2 && (await store.countLeases()) === 0);
    slowLeaseWrites = 0;
    const client = new CoordinatorClient(url, agents[0]!);
    const next = await client.getWork(8);
    const ips = (next.items ?? []).map((item) => item.ip).sort();
    // Every address of the scope exactly once: the two given back (queued first) and the cycle's other six.
    expect(ips).toEqual([...addresses].sort());
    expect((next.items ?? []).filter((item) => item.reason === 'expired')).toHaveLength(2);
    expect(await store.countLeases()).toBe(8);
  });

  test('an answer lost on the way: the agent names the request as abandoned, and the next request gives back and re-leases those hosts', async () => {
    await reset();
    const proxy = await cuttingProxy(Number(new URL(url).port));
    try {
      const client = new CoordinatorClient(proxy.url, agents[0]!, 5_000);
      proxy.mode = 'cut';
      await expect(client.getWork(2)).rejects.toThrow(/coordinator (unreachable|answer cut short)/);
      // The coordinator wrote its answer, so it holds the leases: the agent is the one that knows.
      const lost = await store.listLeases({ agentId: (await store.listLeases())[0]?.agentId ?? '' });
      expect(lost).toHaveLength(2);
      expect(client.abandonedWorkRequests).toHaveLength(1);
      expect(lost.every((lease) => lease.requestKey === client.abandonedWorkRequests[0])).toBe(true);

      proxy.mode = 'pass';
      const next = await client.getWork(2);
      const items = next.items ?? [];
      // The same two hosts again, under new leases; the lost leases are gone.
      expect(items.map((item) => item.ip).sort()).toEqual(lost.map((lease) => lease.ip).sort());
      expect(items.every((item) => item.reason === 'expired')).toBe(true);
      for (const lease of lost) expect(await store.getLease(lease.id)).toBeUndefined();
      expect(await store.countLeases()).toBe(2);
      // Named to a coordinator that answered: not named again.
      expect(client.abandonedWorkRequests).toHaveLength(0);
    } finally {
      await proxy.close();
    }
  });

  test('an agent that stops after its work answers were lost gives those leases back as it stops (its release names the requests)', async () => {
    await reset();
    const proxy = await cuttingProxy(Number(new URL(url).port));
    try {
      // Every work answer is lost; the agent (--once) gives up after its retries and stops: it
      // never makes the next work request that would name the last lost one.
      proxy.mode = 'cut-work';
      const lines: string[] = [];
      const agent = new Agent({
        server: proxy.url,
        token: agents[0]!,
        concurrency: 2,
        once: true,
        backoff: { initialMs: 10, maxMs: 20 },
        // Nothing is ever scanned (no work answer arrives): the stand-ins' config, without scanners.
        scan: {
          ...standInScanConfig((line) => void lines.push(line)),
          preflight: 'auto',
          tools: { nmap: null, masscan: null, rawSockets: false },
        },
      });
      const stats = await agent.run();
      expect(stats.submitted).toBe(0);
      expect(stats.errors, lines.join('\n')).toBe(1);
      // Nothing it was handed stays leased for 15 minutes: all queued again now.
      expect(await store.countLeases(), lines.join('\n')).toBe(0);
      expect(await store.countQueuedWork()).toBe(2);
      expect(
        lines.some((l) => /gave 2 lease\(s\) back .*unanswered work request/.test(l)),
        lines.join('\n'),
      ).toBe(true);
    } finally {
      await proxy.close();
    }
  });

  test('a release names its lease ids, its unanswered work requests or both; anything else is refused, naming the field', async () => {
    await reset();
    const post = (body: unknown) =>
      fetch(`${url}/api/v1/agent/release`, {
        method: 'POST',
        headers: { ...bearer(agents[0]!), 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
    for (const [body, field] of [
      [{}, 'body'],
      [{ workRequests: [] }, 'workRequests'],
      [{ workRequests: ['short'] }, 'workRequests'],
      [{ workRequests: Array.from({ length: 17 }, (_, i) => `key-number-${i}`) }, 'workRequests'],
    ] as const) {
      const res = await post(body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(await res.text(), JSON.stringify(body)).toContain(field);
    }
    // Another agent's request, named by this agent: nothing of the other's is given back.
    const other = new CoordinatorClient(url, agents[1]!);
    expect((await other.getWork(2)).items).toHaveLength(2);
    const key = (await store.listLeases())[0]!.requestKey!;
    const res = await post({ workRequests: [key] });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ released: 0 });
    expect(await store.countLeases()).toBe(2);
    // Its own: given back.
    expect(await other.release([], [key])).toEqual({ released: 2 });
    expect(await store.countLeases()).toBe(0);
  });

  test("an agent naming another agent's request gives back nothing of the other's", async () => {
    await reset();
    const first = new CoordinatorClient(url, agents[0]!);
    expect((await first.getWork(2)).items).toHaveLength(2);
    const held = await store.listLeases();
    const key = held[0]!.requestKey!;
    expect(key).toMatch(/^[A-Za-z0-9_-]{16}$/);
    const res = await fetch(`${url}/api/v1/agent/work?max=1`, {
      headers: { ...bearer(agents[1]!), [WORK_REQUEST_HEADER]: 'other-agent-1', [WORK_ABANDONED_HEADER]: key },
    });
    expect(res.status).toBe(200);
    for (const lease of held) expect((await store.getLease(lease.id))?.agentId).toBe(lease.agentId);
  });

  test('many answered requests on one kept-alive connection give nothing back and leave no listener behind', async () => {
    await reset();
    const warnings: string[] = [];
    const onWarning = (w: Error): void => void warnings.push(w.name);
    process.on('warning', onWarning);
    try {
      const client = new CoordinatorClient(url, agents[0]!);
      for (let i = 0; i < 30; i++) {
        const item = (await client.getWork(1)).work;
        expect(item, `request ${i}`).not.toBeNull();
        expect(await store.getLease(item!.leaseId)).toBeDefined();
        // Given back by the agent, so the next request has work again.
        expect(await client.release([item!.leaseId])).toEqual({ released: 1 });
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(warnings).not.toContain('MaxListenersExceededWarning');
    } finally {
      process.off('warning', onWarning);
    }
  });

  test('a malformed request key or abandoned list is refused, naming the header', async () => {
    for (const [header, value] of [
      [WORK_REQUEST_HEADER, 'short'],
      [WORK_REQUEST_HEADER, 'has space in it'],
      [WORK_ABANDONED_HEADER, 'good-key-1,,good-key-2'],
      [WORK_ABANDONED_HEADER, Array.from({ length: 17 }, (_, i) => `key-number-${i}`).join(',')],
    ] as const) {
      const res = await fetch(`${url}/api/v1/agent/work`, { headers: { ...bearer(agents[0]!), [header]: value } });
      expect(res.status, value).toBe(400);
      expect(await res.text()).toContain(header);
    }
  });
});

const missing = postgresMissing();

describe.skipIf(missing !== undefined)('two coordinators on one PostgreSQL: an answer lost from one is given back by the other', () => {
  const pg = usePostgres();
  const openOn = postgresCoordinators(pg);

  test("the agent moves on to the second coordinator at once, names the lost request there, and gets the first one's leases back", async () => {
    const schema = pg.freshSchema();
    const open = async (): Promise<{ app: FastifyInstance; url: string }> => {
      const app = await openOn(schema, Date.now, { leaseSeconds: 900 });
      return { app, url: await app.listen({ host: '127.0.0.1', port: 0 }) };
    };
    const a = await open();
    const b = await open();
    const t = await tokens(a.app);
    await addScope(a.app, t.admin, [{ range: '127.0.5.1-127.0.5.8', tags: ['loop'] }]);
    const proxy = await cuttingProxy(Number(new URL(a.url).port));
    try {
      proxy.mode = 'cut';
      const client = new CoordinatorClient([proxy.url, b.url], t.agents[0]!, 5_000);
      const store = b.app.coordinator.store;
      const answer = await client.getWork(2);
      const items = answer.items ?? [];
      expect(items).toHaveLength(2);
      // A leased two hosts under the first attempt's key and its answer was cut; B, asked at once
      // with that key named, gave them back and leased them again: two leases in all, not four.
      const held = await store.listLeases();
      expect(held.map((l) => l.id).sort()).toEqual(items.map((i) => i.leaseId).sort());
      expect(items.every((i) => i.reason === 'expired')).toBe(true);
      expect(client.abandonedWorkRequests).toHaveLength(0);
    } finally {
      await proxy.close();
    }
  });
});
