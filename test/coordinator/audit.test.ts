import { fc, test } from '@fast-check/vitest';
import type { FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { type AuditEntry, auditKey } from '../../src/coordinator/audit.js';
import { bearer, manualClock, openApp, tempDataDir, tokens } from './helpers.js';

describe('the audit log of admin API changes (real SQLite file)', () => {
  let app: FastifyInstance | undefined;
  let data: ReturnType<typeof tempDataDir> | undefined;
  afterEach(async () => {
    await app?.close();
    data?.cleanup();
    app = undefined;
  });

  async function audit(admin: string, query = ''): Promise<{ total: number; items: AuditEntry[] }> {
    const res = await app!.inject({ method: 'GET', url: `/api/v1/admin/audit${query}`, headers: bearer(admin) });
    expect(res.statusCode).toBe(200);
    return res.json();
  }

  it('audits agent groups set at creation and edited, and a retention pass run by an admin', async () => {
    data = tempDataDir();
    const clock = manualClock();
    app = await openApp(data.dir, clock.now);
    const { admin } = await tokens(app);
    const made = await app.inject({
      method: 'POST',
      url: '/api/v1/admin/agents',
      headers: bearer(admin),
      payload: { name: 'inside', groups: ['internal'] },
    });
    expect(made.statusCode).toBe(200);
    const id = made.json<{ id: string; groups: string[] }>().id;
    expect(made.json<{ groups: string[] }>().groups).toEqual(['internal']);
    clock.advance(1000);
    const edited = await app.inject({
      method: 'PUT',
      url: `/api/v1/admin/agents/${id}/groups`,
      headers: bearer(admin),
      payload: { groups: ['external', 'internal'] },
    });
    expect(edited.statusCode).toBe(200);
    clock.advance(1000);
    const run = await app.inject({ method: 'POST', url: '/api/v1/admin/retention/run', headers: bearer(admin) });
    expect(run.statusCode).toBe(200);
    const log = await audit(admin);
    expect(log.items.map((e) => e.action)).toEqual(['retention.run', 'agent.groups', 'agent.create']);
    expect(log.items[2]!.summary).toContain('group(s) internal');
    expect(log.items[1]).toMatchObject({ target: id });
    expect(log.items[1]!.summary).toContain('external,internal');
    expect(log.items[0]!.summary).toMatch(/^retention pass: 0 visit\(s\) dropped/);
  });

  it('records who (token id and name), what and when for each change, newest first, and nothing for a refused change', async () => {
    data = tempDataDir();
    const clock = manualClock();
    app = await openApp(data.dir, clock.now);
    const { admin } = await tokens(app);
    const me = (await app.coordinator.store.listAdminTokens())[0]!;

    const add = await app.inject({
      method: 'POST',
      url: '/api/v1/admin/scope',
      headers: bearer(admin),
      payload: { entries: [{ range: '198.18.1.0/24', tags: ['dmz'] }] },
    });
    expect(add.statusCode).toBe(200);
    clock.advance(1000);
    const bad = await app.inject({
      method: 'POST',
      url: '/api/v1/admin/scope',
      headers: bearer(admin),
      payload: { entries: [{ range: '198.18.1.0/33' }] },
    });
    expect(bad.statusCode).toBe(400);
    const badPolicy = await app.inject({
      method: 'PUT',
      url: '/api/v1/admin/policies/dmz',
      headers: bearer(admin),
      payload: { strategy: 'no-such-strategy' },
    });
    expect(badPolicy.statusCode).toBe(400);
    clock.advance(1000);
    const policy = await app.inject({
      method: 'PUT',
      url: '/api/v1/admin/policies/dmz',
      headers: bearer(admin),
      payload: { strategy: 'fixed', budget: 3, params: { ports: [22, 80, 443] } },
    });
    expect(policy.statusCode).toBe(200);
    clock.advance(1000);
    const made = await app.inject({ method: 'POST', url: '/api/v1/admin/tokens', headers: bearer(admin), payload: { name: 'second' } });
    const rule = await app.inject({
      method: 'POST',
      url: '/api/v1/admin/alerts',
      headers: bearer(admin),
      payload: { name: 'rdp', query: 'kind:service-new port:3389', url: 'http://127.0.0.1:9/hook' },
    });
    expect(rule.statusCode).toBe(200);
    // The second admin revokes the first: the entry names the second.
    clock.advance(1000);
    const revoke = await app.inject({
      method: 'DELETE',
      url: `/api/v1/admin/tokens/${me.id}`,
      headers: bearer(made.json<{ token: string }>().token),
    });
    expect(revoke.json()).toEqual({ deleted: true });

    const log = await audit(made.json<{ token: string }>().token);
    expect(log.total).toBe(5);
    expect(log.items.map((e) => e.action)).toEqual(['token.revoke', 'alert.add', 'token.create', 'policy.set', 'scope.add']);
    const [revoked, , created, setPolicy, added] = log.items;
    expect(added!.at).toBe(clock.now() - 4000);
    expect(added).toMatchObject({ actor: { id: me.id, name: 'test-admin', via: 'api' }, target: 'scope' });
    expect(added!.summary).toContain('198.18.1.0/24 [dmz]');
    expect(setPolicy).toMatchObject({ target: 'dmz', actor: { name: 'test-admin' } });
    expect(setPolicy!.summary).toContain('strategy fixed');
    expect(created!.summary).toContain('"second"');
    expect(created!.summary).not.toContain('pbk_');
    expect(revoked).toMatchObject({ target: me.id, actor: { id: made.json<{ id: string }>().id, name: 'second' } });
    expect(JSON.stringify(log)).not.toContain(admin);
  });

  it('pages newest first and keeps entries across a restart', async () => {
    data = tempDataDir();
    const clock = manualClock();
    app = await openApp(data.dir, clock.now);
    const { admin } = await tokens(app);
    for (let i = 0; i < 7; i++) {
      // Several changes in one millisecond keep their order too.
      const res = await app.inject({
        method: 'POST',
        url: '/api/v1/admin/scope',
        headers: bearer(admin),
        payload: { entries: [{ range: `198.18.2.${i}` }] },
      });
      expect(res.statusCode).toBe(200);
      if (i % 2 === 0) clock.advance(10);
    }
    await app.close();
    app = await openApp(data.dir, clock.now);
    const first = await audit(admin, '?limit=3');
    const second = await audit(admin, '?limit=3&offset=3');
    const last = await audit(admin, '?limit=3&offset=6');
    expect(first.total).toBe(7);
    const ranges = [...first.items, ...second.items, ...last.items].map((e) => /198\.18\.2\.(\d)/.exec(e.summary)![1]);
    expect(ranges).toEqual(['6', '5', '4', '3', '2', '1', '0']);
    expect(last.items).toHaveLength(1);
  });
});

describe('audit keys', () => {
  test.prop([
    fc.integer({ min: 0, max: 4e12 }),
    fc.integer({ min: 0, max: 999_998 }),
    fc.integer({ min: 0, max: 4e12 }),
    fc.integer({ min: 0, max: 999_998 }),
  ])('sort newest first in plain string order (later time, or the same time and a later sequence, sorts before)', (t1, s1, t2, s2) => {
    const a = auditKey(t1, s1);
    const b = auditKey(t2, s2);
    const newer = t1 > t2 || (t1 === t2 && s1 > s2);
    const older = t1 < t2 || (t1 === t2 && s1 < s2);
    if (newer) expect(a < b).toBe(true);
    if (older) expect(a > b).toBe(true);
  });
});
