import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { addScope, bearer, getWork, manualClock, openApp, resultFor, submit, tempDataDir, tokens } from './helpers.js';
import type { WorkItem } from '../../src/protocol/protocol.js';

describe('work distribution', () => {
  let data: ReturnType<typeof tempDataDir>;
  let app: FastifyInstance;
  const clock = manualClock();

  beforeEach(async () => {
    data = tempDataDir();
    app = await openApp(data.dir, clock.now);
  });
  afterEach(async () => {
    await app.close();
    data.cleanup();
  });

  async function drain(token: string, max: number): Promise<WorkItem[]> {
    const out: WorkItem[] = [];
    for (let i = 0; i < max; i++) {
      const w = await getWork(app, token);
      if (!w) break;
      out.push(w);
    }
    return out;
  }

  it('hands out every in-scope address exactly once per cycle, skipping the blocklist, with tags and ports', async () => {
    const t = await tokens(app);
    await addScope(app, t.admin, [{ range: '198.18.0.0/28', tags: ['lab'] }, { range: '198.18.0.20-198.18.0.23' }]);
    await addScope(app, t.admin, [{ range: '198.18.0.4/30' }], 'blocklist');
    const items = await drain(t.agents[0]!, 16);
    const ips = items.map((w) => w.ip);
    const expected = [0, 1, 2, 3, 8, 9, 10, 11, 12, 13, 14, 15, 20, 21, 22, 23].map((n) => `198.18.0.${n}`);
    expect([...ips].sort()).toEqual([...expected].sort());
    expect(ips).not.toEqual(expected); // shuffled, not ascending
    const first = items.find((w) => w.ip === '198.18.0.1')!;
    expect(first.tags).toEqual(['lab']);
    expect(first.ports.length).toBeGreaterThan(0);
    expect(first.ports).toEqual([...first.ports].sort((a, b) => a - b));
    expect(first.scan.versionDetection).toBe(true);
    expect(first.cycle).toBe(1);
    // Paced by the default policy's period (24 h): no cycle 2 before it is over.
    expect(await getWork(app, t.agents[0]!)).toBeNull();
    clock.advance(86_400_000);
    const next = await getWork(app, t.agents[0]!);
    expect(next?.cycle).toBe(2);
  });

  it('binds results to the lease: foreign agents, unknown leases, other addresses and ports not given are rejected', async () => {
    const t = await tokens(app, 2);
    await addScope(app, t.admin, [{ range: '198.18.1.0/30' }]);
    // A budget below the port space, so some port is not in the work item (the default rate
    // funds every port of a scope this small).
    await app.coordinator.setPolicy('', { strategy: 'adaptive', budget: 100 });
    const w = (await getWork(app, t.agents[0]!))!;
    const port = w.ports[0]!;
    const ok = resultFor(w, [port], clock.now());

    const foreign = await submit(app, t.agents[1]!, ok);
    expect(foreign.statusCode).toBe(403);
    expect(foreign.json().code).toBe('PB_ERR_FORBIDDEN');

    const unknown = await submit(app, t.agents[0]!, { ...ok, leaseId: 'lease_nope' });
    expect(unknown.statusCode).toBe(409);
    expect(unknown.json().message).toMatch(/unknown or has expired/);

    const otherIp = await submit(app, t.agents[0]!, { ...ok, ip: '198.18.1.3' === w.ip ? '198.18.1.2' : '198.18.1.3' });
    expect(otherIp.statusCode).toBe(400);

    const notGiven = w.ports.includes(1) ? 65535 : 1;
    const badPort = await submit(app, t.agents[0]!, { ...ok, ports: [...ok.ports, { port: notGiven, state: 'open' }] });
    expect(badPort.statusCode).toBe(400);
    expect(badPort.json().message).toMatch(new RegExp(`ports\\[1\\]\\.port: port ${notGiven} was not in the work item`));

    const accepted = await submit(app, t.agents[0]!, ok);
    expect(accepted.statusCode).toBe(200);
    expect(accepted.json()).toMatchObject({ accepted: true, duplicate: false, scanId: w.leaseId });

    const again = await submit(app, t.agents[0]!, ok);
    expect(again.statusCode).toBe(200);
    expect(again.json()).toMatchObject({ accepted: false, duplicate: true });

    const latest = await app.inject({ method: 'GET', url: `/api/v1/hosts/${w.ip}`, headers: bearer(t.admin) });
    expect(latest.json().ports).toEqual([expect.objectContaining({ port, state: 'open', product: 'nginx' })]);
  });

  it('refuses results for an address that left the scope', async () => {
    const t = await tokens(app);
    await addScope(app, t.admin, [{ range: '198.18.2.0/31' }]);
    const w = (await getWork(app, t.agents[0]!))!;
    await addScope(app, t.admin, [{ range: w.ip }], 'blocklist');
    const res = await submit(app, t.agents[0]!, resultFor(w, [], clock.now()));
    expect(res.statusCode).toBe(403);
    expect(res.json().code).toBe('PB_ERR_UNSAFE_TARGET');
  });

  it('puts expired leases back in the queue and re-issues them first, counting them', async () => {
    const t = await tokens(app, 2);
    await addScope(app, t.admin, [{ range: '198.18.3.0/28' }]);
    const w = (await getWork(app, t.agents[0]!))!;
    clock.advance(901_000); // past the default 900 s lease
    const swept = await app.coordinator.sweep();
    expect(swept.expired).toBe(1);
    const again = (await getWork(app, t.agents[1]!))!;
    expect(again.ip).toBe(w.ip);
    expect(again.reason).toBe('expired');
    expect(again.ports).toEqual(w.ports);
    expect(again.leaseId).not.toBe(w.leaseId);
    // The dead agent's late submission is refused; the new holder's is accepted.
    expect((await submit(app, t.agents[0]!, resultFor(w, [], clock.now()))).statusCode).toBe(409);
    expect((await submit(app, t.agents[1]!, resultFor(again, [], clock.now()))).statusCode).toBe(200);
    const metrics = await app.inject({ method: 'GET', url: '/metrics' });
    expect(metrics.body).toMatch(/portbandit_leases_expired_total 1/);
    expect(metrics.body).toMatch(/portbandit_work_items_total\{reason="expired"\} 1/);
  });

  it('serves manual rescans before the cycle and refuses out-of-scope rescans', async () => {
    const t = await tokens(app);
    await addScope(app, t.admin, [{ range: '198.18.4.0/24' }]);
    const res = await app.inject({
      method: 'POST',
      url: '/api/v1/admin/rescan',
      headers: bearer(t.admin),
      payload: { ips: ['198.18.4.77'] },
    });
    expect(res.json()).toEqual({ queued: 1, scanning: [] });
    const w = (await getWork(app, t.agents[0]!))!;
    expect(w).toMatchObject({ ip: '198.18.4.77', reason: 'manual' });
    // Asked again while it is being scanned: nothing queued, the answer says why.
    const again = await app.inject({
      method: 'POST',
      url: '/api/v1/admin/rescan',
      headers: bearer(t.admin),
      payload: { ips: ['198.18.4.77', '198.18.4.78'] },
    });
    expect(again.json()).toEqual({ queued: 1, scanning: ['198.18.4.77'] });
    const out = await app.inject({
      method: 'POST',
      url: '/api/v1/admin/rescan',
      headers: bearer(t.admin),
      payload: { ips: ['198.19.9.9'] },
    });
    expect(out.statusCode).toBe(403);
  });

  it("serves a visit's follow-up round before the rescans queued ahead of it", async () => {
    const t = await tokens(app);
    await addScope(app, t.admin, [{ range: '198.18.4.0/24' }]);
    await app.coordinator.setPolicy('', { strategy: 'adaptive', budget: 40, params: { sweepShare: 0, followUp: true } });
    const w0 = (await getWork(app, t.agents[0]!))!;
    // An operator rescans the whole /24 while the visit's first round is out.
    const all = Array.from({ length: 256 }, (_, i) => `198.18.4.${i}`);
    // The host whose first round is out is being scanned: that scan is its rescan, not queued.
    const rescan = await app.coordinator.requestRescan(all);
    expect(rescan.queued.length).toBe(255);
    expect(rescan.scanning).toEqual([w0.ip]);
    const r0 = await submit(app, t.agents[0]!, resultFor(w0, w0.ports.slice(0, 2), clock.now()));
    expect(r0.json()).toMatchObject({ accepted: true, followUp: true });
    // The follow-up was queued after the 255 rescans; it is handed out first.
    const w1 = (await getWork(app, t.agents[0]!))!;
    expect(w1).toMatchObject({ ip: w0.ip, round: 1, reason: 'followup' });
    const next = (await getWork(app, t.agents[0]!))!;
    expect(next).toMatchObject({ ip: '198.18.4.0', reason: 'manual' });
  });

  it('a rescan requested while getworks run is served next, not after the next sweep', async () => {
    const t = await tokens(app);
    await addScope(app, t.admin, [{ range: '198.18.4.0/24' }]);
    const agent = (await app.coordinator.authenticateAgent(t.agents[0]!))!;
    // The getwork of the same turn finds the queue empty (the rescan is not committed yet).
    const [, during] = await Promise.all([app.coordinator.requestRescan(['198.18.4.77']), app.coordinator.getWork(agent)]);
    expect(during?.reason).toBe('cycle');
    const next = await app.coordinator.getWork(agent);
    expect(next).toMatchObject({ ip: '198.18.4.77', reason: 'manual' });
  });

  it('hands the strategy follow-up round to the same host as a second work item and merges the rounds', async () => {
    const t = await tokens(app);
    await addScope(app, t.admin, [{ range: '198.18.5.0/30', tags: ['web'] }]);
    const put = await app.inject({
      method: 'PUT',
      url: '/api/v1/admin/policies/web',
      headers: bearer(t.admin),
      payload: { strategy: 'adaptive', budget: 40, params: { sweepShare: 0, followUp: true } },
    });
    expect(put.statusCode).toBe(200);
    const w0 = (await getWork(app, t.agents[0]!))!;
    expect(w0.round).toBe(0);
    expect(w0.ports.length).toBeLessThan(40);
    const open0 = w0.ports.slice(0, 2);
    const r0 = await submit(app, t.agents[0]!, resultFor(w0, open0, clock.now()));
    expect(r0.json()).toMatchObject({ accepted: true, followUp: true });
    const w1 = (await getWork(app, t.agents[0]!))!;
    expect(w1).toMatchObject({ ip: w0.ip, round: 1, reason: 'followup' });
    expect(w1.ports.some((p) => w0.ports.includes(p))).toBe(false);
    expect(w0.ports.length + w1.ports.length).toBeLessThanOrEqual(40);
    const r1 = await submit(app, t.agents[0]!, resultFor(w1, [w1.ports[0]!], clock.now() + 10));
    expect(r1.json()).toMatchObject({ accepted: true, followUp: false });
    const latest = (await app.inject({ method: 'GET', url: `/api/v1/hosts/${w0.ip}`, headers: bearer(t.admin) })).json();
    expect(latest.ports.map((p: { port: number }) => p.port).sort((a: number, b: number) => a - b)).toEqual(
      [...open0, w1.ports[0]!].sort((a, b) => a - b),
    );
    // No false "closed" events: round 0's ports were not probed again in round 1.
    const events = await app.inject({ method: 'GET', url: '/api/v1/events', headers: bearer(t.admin) });
    const kinds = events.body
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l))
      .filter((e) => e.kind)
      .map((e) => e.kind);
    expect(kinds.filter((k) => k === 'service-closed')).toEqual([]);
    expect(kinds.filter((k) => k === 'service-new')).toHaveLength(3);
  });

  it('answers null with a retry hint when there is nothing to scan, and records the agent version', async () => {
    const t = await tokens(app);
    const res = await app.inject({ method: 'GET', url: '/api/v1/agent/work?version=9.9.9', headers: bearer(t.agents[0]!) });
    expect(res.json()).toEqual({ work: null, retryAfterMs: 5000 });
    await app.coordinator.sweep();
    const agents = (await app.inject({ method: 'GET', url: '/api/v1/admin/agents', headers: bearer(t.admin) })).json().agents;
    expect(agents[0]).toMatchObject({ id: t.agentIds[0], version: '9.9.9', lastSeenAt: clock.now(), inFlight: 0 });
  });

  it('rejects bad bodies with a clear message and needs tokens', async () => {
    const t = await tokens(app);
    const bad = await submit(app, t.agents[0]!, {
      leaseId: 'x',
      ip: '198.18.0.1',
      status: 'up',
      startedAt: 1,
      finishedAt: 2,
      preflight: 'none',
      ports: [{ port: 70000, state: 'open' }],
    });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().code).toBe('PB_ERR_SCHEMA');
    expect(bad.json().message).toMatch(/port/);
    const noToken = await app.inject({ method: 'GET', url: '/api/v1/agent/work' });
    expect(noToken.statusCode).toBe(401);
    const wrongRole = await app.inject({ method: 'GET', url: '/api/v1/admin/scope', headers: bearer(t.agents[0]!) });
    expect(wrongRole.statusCode).toBe(403);
    const big = await app.inject({
      method: 'POST',
      url: '/api/v1/agent/results',
      headers: { ...bearer(t.agents[0]!), 'content-type': 'application/json' },
      payload: 'x'.repeat(9 * 1024 * 1024),
    });
    expect(big.statusCode).toBe(413);
  });
});
