import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { Agent, AllowList } from '../../agent/index.js';
import { addScope, bearer, getWork, openApp, tempDataDir, tokens } from '../coordinator/helpers.js';

/**
 * An agent stopped with its scans cancelled (a second signal) gives its unfinished leases back:
 * the coordinator queues them again at once, not when they expire (15 minutes by default). The
 * scanner is an nmap stand-in on PATH that sleeps and sends nothing; the coordinator is real,
 * over HTTP on loopback.
 */
describe('an agent stopped mid-scan gives its leases back', () => {
  const data = tempDataDir();
  const bin = mkdtempSync(join(tmpdir(), 'pb-give-back-'));
  const savedPath = process.env.PATH;
  let app: FastifyInstance;
  let url: string;
  let admin = '';
  let agents: string[] = [];

  beforeAll(async () => {
    writeFileSync(join(bin, 'nmap'), '#!/bin/sh\nexec sleep 120\n');
    chmodSync(join(bin, 'nmap'), 0o755);
    process.env.PATH = `${bin}${delimiter}${savedPath ?? ''}`;
    app = await openApp(data.dir, Date.now);
    url = await app.listen({ host: '127.0.0.1', port: 0 });
    const t = await tokens(app, 2);
    admin = t.admin;
    agents = t.agents;
    await addScope(app, admin, [{ range: '127.0.4.1-127.0.4.3', tags: ['loop'] }]);
    const res = await app.inject({
      method: 'PUT',
      url: '/api/v1/admin/policies/_default',
      headers: bearer(admin),
      payload: {
        strategy: 'fixed',
        params: { ports: [22, 80] },
        budget: 2,
        scan: { preflight: 'none', versionDetection: true, scripts: [] },
      },
    });
    expect(res.statusCode, res.body).toBe(200);
  }, 60_000);

  afterAll(async () => {
    process.env.PATH = savedPath;
    await app?.close();
    rmSync(bin, { recursive: true, force: true });
    data.cleanup();
  });

  test('the three leases are queued again the moment the agent stops, with their rounds', async () => {
    const lines: string[] = [];
    const agent = new Agent({
      server: url,
      token: agents[0]!,
      concurrency: 8,
      once: false,
      scan: {
        allow: AllowList.parse(['127.0.4.0/30']),
        scriptsAllow: new Set(),
        preflight: 'auto',
        tools: { nmap: 'nmap', masscan: null, rawSockets: false },
        masscan: { rate: 1000, retries: 0, waitSeconds: 0 },
        connect: { concurrency: 16, timeoutMs: 500, retries: 0 },
        pseudoServiceThreshold: 100,
        log: (line) => {
          lines.push(line);
        },
      },
    });
    const running = agent.run();
    const store = app.coordinator.store;
    const deadline = Date.now() + 30_000;
    while ((await store.countLeases()) < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(await store.countLeases()).toBe(3);
    // Leased by this agent, scanning (nmap sleeps): a second signal cancels the scans.
    agent.stop({ now: true });
    const stats = await running;
    expect(stats.submitted).toBe(0);
    // Cancelled as asked: not counted as errors (an operator's Ctrl-C twice is not a failure).
    expect(stats.errors, lines.join('\n')).toBe(0);
    expect(stats.cancelled).toBe(1);
    expect(
      lines.some((l) => /gave 3 of 3 unfinished lease\(s\) back/.test(l)),
      lines.join('\n'),
    ).toBe(true);
    expect(await store.countLeases()).toBe(0);
    const queued = await store.listQueuedWork();
    expect(queued.map((q) => q.ip).sort()).toEqual(['127.0.4.1', '127.0.4.2', '127.0.4.3']);
    expect(queued.every((q) => q.reason === 'expired' && (q.round ?? 0) === 0)).toBe(true);
    // Another agent gets them now, not in 15 minutes.
    const next = await getWork(app, agents[1]!);
    expect(next?.ip).toMatch(/^127\.0\.4\.[123]$/);
  }, 60_000);

  test("the coordinator releases only the asking agent's live leases", async () => {
    const held = (await app.coordinator.store.listLeases()).filter((l) => l.ip.startsWith('127.0.4.'));
    expect(held.length).toBe(1);
    const other = await app.inject({
      method: 'POST',
      url: '/api/v1/agent/release',
      headers: bearer(agents[0]!),
      payload: { leaseIds: [held[0]!.id, 'lease_unknown'] },
    });
    expect(other.statusCode, other.body).toBe(200);
    expect(other.json()).toEqual({ released: 0 });
    const own = await app.inject({
      method: 'POST',
      url: '/api/v1/agent/release',
      headers: bearer(agents[1]!),
      payload: { leaseIds: [held[0]!.id] },
    });
    expect(own.json()).toEqual({ released: 1 });
    expect(await app.coordinator.store.countLeases()).toBe(0);
    const bad = await app.inject({ method: 'POST', url: '/api/v1/agent/release', headers: bearer(agents[1]!), payload: { leaseIds: [] } });
    expect(bad.statusCode).toBe(400);
    const admin401 = await app.inject({ method: 'POST', url: '/api/v1/agent/release', payload: { leaseIds: ['x'] } });
    expect(admin401.statusCode).toBe(401);
  });
});
