import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { addScope, bearer, getWork, manualClock, openApp, resultFor, submit, tempDataDir, tokens } from './helpers.js';
import type { WorkItem } from '../../src/protocol/protocol.js';

describe('state that survives a restart', () => {
  let data: ReturnType<typeof tempDataDir>;
  const clock = manualClock();
  beforeEach(() => {
    data = tempDataDir();
  });
  afterEach(() => data.cleanup());

  it('resumes the cycle where it stopped: no address twice, none missed', async () => {
    let app = await openApp(data.dir, clock.now);
    const t = await tokens(app);
    await addScope(app, t.admin, [{ range: '198.18.8.0/27' }, { range: '2001:db8::/123' }]);
    const seen: WorkItem[] = [];
    for (let i = 0; i < 25; i++) seen.push((await getWork(app, t.agents[0]!))!);
    await app.close();
    app = await openApp(data.dir, clock.now);
    for (let i = 0; i < 39; i++) seen.push((await getWork(app, t.agents[0]!))!);
    const ips = seen.map((w) => w.ip);
    expect(new Set(ips).size).toBe(64);
    expect(seen.every((w) => w.cycle === 1)).toBe(true);
    clock.advance(86_400_000); // the default policy's period: cycle 2 starts once it is over
    expect((await getWork(app, t.agents[0]!))!.cycle).toBe(2);
    await app.close();
  });

  it('keeps what the strategy learned across a restart', async () => {
    let app = await openApp(data.dir, clock.now);
    const t = await tokens(app);
    await addScope(app, t.admin, [{ range: '198.18.9.0/28', tags: ['web'] }]);
    const put = await app.inject({
      method: 'PUT',
      url: '/api/v1/admin/policies/web',
      headers: bearer(t.admin),
      payload: { strategy: 'adaptive', budget: 30, params: { sweepShare: 0, followUp: false } },
    });
    expect(put.statusCode).toBe(200);
    // Every host answers on 8081 (when probed) and on the first port handed out.
    for (let i = 0; i < 16; i++) {
      const w = (await getWork(app, t.agents[0]!))!;
      const open = [w.ports[0]!, ...(w.ports.includes(8081) ? [8081] : [])];
      expect((await submit(app, t.agents[0]!, resultFor(w, open, clock.now()))).statusCode).toBe(200);
    }
    await app.coordinator.learningSettled(); // learning runs after the submits are answered
    const before = (
      await app.inject({ method: 'GET', url: '/api/v1/admin/policies/web/learned?limit=50', headers: bearer(t.admin) })
    ).json();
    expect(before.batches).toBe(4); // learnBatchSize 4 in tests
    expect(before.learned).toBeGreaterThan(0);
    await app.close();

    app = await openApp(data.dir, clock.now);
    const after = (
      await app.inject({ method: 'GET', url: '/api/v1/admin/policies/web/learned?limit=50', headers: bearer(t.admin) })
    ).json();
    expect(after.batches).toBe(before.batches);
    expect(after.learned).toBe(before.learned);
    expect(after.explanation).toEqual(before.explanation);
    expect(after.policy.strategy).toBe('adaptive');
    await app.close();
  });

  it('stores tokens only as hashes, and they keep working after a restart', async () => {
    let app = await openApp(data.dir, clock.now);
    const t = await tokens(app);
    await app.close();
    const bytes = readdirSync(data.dir)
      .filter((f) => f.startsWith('portbandit.db'))
      .map((f) => readFileSync(join(data.dir, f)).toString('latin1'))
      .join('');
    expect(bytes.length).toBeGreaterThan(0);
    expect(bytes.includes(t.admin)).toBe(false);
    expect(bytes.includes(t.agents[0]!)).toBe(false);
    expect(bytes.includes(t.admin.slice(4, 24))).toBe(false);
    app = await openApp(data.dir, clock.now);
    expect((await app.inject({ method: 'GET', url: '/api/v1/admin/agents', headers: bearer(t.admin) })).statusCode).toBe(200);
    expect((await app.inject({ method: 'GET', url: '/api/v1/agent/work', headers: bearer(t.agents[0]!) })).statusCode).toBe(200);
    const listed = (await app.inject({ method: 'GET', url: '/api/v1/admin/agents', headers: bearer(t.admin) })).json();
    expect(JSON.stringify(listed)).not.toMatch(/tokenHash|pba_/);
    expect(listed.agents[0]).toMatchObject({ name: 'agent-0', inFlight: 0 });
    await app.close();
  });

  it('stops accepting an agent revoked by another process within one activity period', async () => {
    const app = await openApp(data.dir, clock.now);
    const t = await tokens(app);
    expect((await app.inject({ method: 'GET', url: '/api/v1/agent/work', headers: bearer(t.agents[0]!) })).statusCode).toBe(200);
    // Another process (the CLI) deletes the agent directly in the store.
    const other = await openApp(data.dir, clock.now);
    expect(await other.coordinator.store.deleteAgent(t.agentIds[0]!)).toBe(true);
    await other.close();
    clock.advance(10_000);
    await app.coordinator.sweep();
    expect((await app.inject({ method: 'GET', url: '/api/v1/agent/work', headers: bearer(t.agents[0]!) })).statusCode).toBe(401);
    await app.close();
  });

  it('rate-limits requests with bad tokens, never requests with good ones', async () => {
    const app = await openApp(data.dir, clock.now, { authFailuresPerMinute: 3 });
    const t = await tokens(app);
    const codes: number[] = [];
    for (let i = 0; i < 5; i++)
      codes.push((await app.inject({ method: 'GET', url: '/api/v1/agent/work', headers: bearer('pba_guess' + i) })).statusCode);
    expect(codes).toEqual([401, 401, 401, 429, 429]);
    for (let i = 0; i < 5; i++)
      expect((await app.inject({ method: 'GET', url: '/api/v1/agent/work', headers: bearer(t.agents[0]!) })).statusCode).toBe(200);
    await app.close();
  });
});
