import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { loadRecording } from '../../src/recording/index.js';
import { resolveConfig } from '../../src/coordinator/config.js';
import { bearer, getWork, manualClock, openApp, resultFor, submit, tempDataDir, tokens } from './helpers.js';
import type { ResultSubmission } from '../../src/protocol/protocol.js';

describe('results, search and history', () => {
  let data: ReturnType<typeof tempDataDir>;
  let app: FastifyInstance;
  let t: Awaited<ReturnType<typeof tokens>>;
  const clock = manualClock();

  beforeEach(async () => {
    data = tempDataDir();
    app = await openApp(data.dir, clock.now);
    t = await tokens(app);
    // Natlas's import format, through the API.
    const imported = await app.inject({
      method: 'PUT',
      url: '/api/v1/admin/scope/import',
      headers: { ...bearer(t.admin), 'content-type': 'text/plain' },
      payload: '# lab\n198.18.10.0/31,dmz\n198.18.10.2,db\n',
    });
    expect(imported.json()).toMatchObject({ imported: 2, addresses: '3' });
    const fixed = await app.inject({
      method: 'PUT',
      url: '/api/v1/admin/policies/_default',
      headers: bearer(t.admin),
      payload: { strategy: 'fixed', budget: 10, params: { ports: [22, 80, 443, 8080] } },
    });
    expect(fixed.statusCode).toBe(200);
  });
  afterEach(async () => {
    await app.close();
    data.cleanup();
  });

  async function scanAll(answer: (ip: string) => ResultSubmission['ports']) {
    for (let i = 0; i < 3; i++) {
      let w = await getWork(app, t.agents[0]!);
      if (!w) {
        clock.advance(86_400_000); // the cycle is paced: the next starts once its period is over
        w = (await getWork(app, t.agents[0]!))!;
      }
      clock.advance(60_000);
      const body: ResultSubmission = { ...resultFor(w, [], clock.now()), ports: answer(w.ip) };
      expect((await submit(app, t.agents[0]!, body)).statusCode).toBe(200);
    }
  }
  const admin = (url: string) => app.inject({ method: 'GET', url, headers: bearer(t.admin) });

  it('exports the scope in the Natlas format', async () => {
    const res = await admin('/api/v1/admin/scope/export');
    expect(res.body).toBe('198.18.10.0/31,dmz\n198.18.10.2,db\n');
  });

  it('hands out the fixed list (Natlas behaviour), then searches, diffs, streams events and exports a recording', async () => {
    const w = (await getWork(app, t.agents[0]!))!;
    expect(w.ports).toEqual([22, 80, 443, 8080]);
    await app.inject({ method: 'POST', url: '/api/v1/admin/cycle/restart', headers: bearer(t.admin) });
    await app.coordinator.store.completeLease(w.leaseId);

    await scanAll((ip) => [
      { port: 22, state: 'open', service: 'ssh', product: 'OpenSSH', version: '9.6' },
      ...(ip === '198.18.10.2' ? [{ port: 443, state: 'open' as const, service: 'https', product: 'nginx', version: '1.25' }] : []),
    ]);
    await scanAll((ip) => [
      { port: 22, state: 'open', service: 'ssh', product: 'OpenSSH', version: '9.7' },
      ...(ip === '198.18.10.2' ? [] : [{ port: 80, state: 'open' as const, service: 'http', product: 'nginx' }]),
    ]);

    const search = (await admin('/api/v1/search?q=' + encodeURIComponent('port:22 tag:dmz'))).json();
    expect(search.total).toBe(2);
    expect(search.items.map((s: { ip: string }) => s.ip).sort()).toEqual(['198.18.10.0', '198.18.10.1']);
    const hosts = await admin('/api/v1/search?format=hosts&q=' + encodeURIComponent('product:OpenSSH -tag:db'));
    expect(hosts.body.trim().split('\n').sort()).toEqual(['198.18.10.0', '198.18.10.1']);
    const history = await admin('/api/v1/search?format=ndjson&view=history&q=' + encodeURIComponent('ip:198.18.10.2'));
    expect(history.body.trim().split('\n')).toHaveLength(2);
    const bad = await admin('/api/v1/search?q=' + encodeURIComponent('port:(('));
    expect(bad.statusCode).toBe(400);
    expect(bad.json().code).toBe('PB_ERR_QUERY');

    const diff = (await admin('/api/v1/hosts/198.18.10.2/diff')).json();
    expect(diff.opened).toEqual([]);
    expect(diff.closed).toEqual([{ port: 443, service: 'https', product: 'nginx', version: '1.25' }]);
    expect(diff.changed).toEqual([
      {
        port: 22,
        before: { service: 'ssh', product: 'OpenSSH', version: '9.6' },
        after: { service: 'ssh', product: 'OpenSSH', version: '9.7' },
      },
    ]);
    const hist = (await admin('/api/v1/hosts/198.18.10.2/history')).json();
    expect(hist.total).toBe(2);

    const events = (await admin('/api/v1/events')).body
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    const kinds = events.filter((e) => e.kind).map((e) => `${e.kind}:${e.ip}:${e.port ?? ''}`);
    expect(kinds).toContain('service-closed:198.18.10.2:443');
    expect(kinds).toContain('service-new:198.18.10.0:80');
    expect(kinds.filter((k) => k.startsWith('host-new'))).toHaveLength(3);
    const cursor = events[events.length - 1].cursor;
    expect(typeof cursor).toBe('string');
    const none = (await admin(`/api/v1/events?cursor=${encodeURIComponent(cursor)}`)).body;
    expect(none.trim()).toBe('');

    const stats = (await admin('/api/v1/stats?tag=dmz')).json();
    expect(stats.topPorts[0]).toEqual({ port: 22, hosts: 2 });
    expect(stats.cycle.cycle).toBeGreaterThanOrEqual(2);
    expect(stats.counts.hosts).toBe(2);

    const rec = await admin('/api/v1/export/recording');
    const file = join(data.dir, 'history.ndjson');
    writeFileSync(file, rec.body);
    const loaded = await loadRecording(file);
    expect(loaded.size).toBe(6);
    expect(loaded.epochs).toBe(2);
  });

  it('does not raise "new service" alerts when a host comes back after a silent scan', async () => {
    await scanAll(() => [{ port: 22, state: 'open', service: 'ssh' }]);
    for (let i = 0; i < 3; i++) {
      let w = await getWork(app, t.agents[0]!);
      if (!w) {
        clock.advance(86_400_000); // the cycle is paced: the next starts once its period is over
        w = (await getWork(app, t.agents[0]!))!;
      }
      clock.advance(60_000);
      expect((await submit(app, t.agents[0]!, { ...resultFor(w, [], clock.now()), status: 'down' })).json()).toMatchObject({
        accepted: true,
        events: 0,
      });
    }
    await scanAll(() => [{ port: 22, state: 'open', service: 'ssh' }]);
    const kinds = (await admin('/api/v1/events')).body
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l))
      .filter((e) => e.kind)
      .map((e) => e.kind);
    expect(kinds.filter((k: string) => k === 'service-new')).toHaveLength(3); // the first visit only
    expect(kinds.filter((k: string) => k === 'service-closed')).toHaveLength(0);
  });

  it('delivers new events to a follower over real HTTP as they are stored', async () => {
    await app.listen({ host: '127.0.0.1', port: 0 });
    const port = (app.server.address() as { port: number }).port;
    const res = await fetch(`http://127.0.0.1:${port}/api/v1/events?follow=true`, { headers: bearer(t.admin) });
    const reader = res.body!.getReader();
    await scanAll(() => [{ port: 22, state: 'open', service: 'ssh' }]);
    let text = '';
    while (!text.includes('service-new')) {
      const chunk = await reader.read();
      if (chunk.done) break;
      text += new TextDecoder().decode(chunk.value);
    }
    expect(text).toMatch(/"kind":"service-new"/);
    await reader.cancel();
  });

  it('uploads a Natlas services file as must-have ports and shows the policy', async () => {
    await app.inject({
      method: 'PUT',
      url: '/api/v1/admin/policies/db',
      headers: bearer(t.admin),
      payload: { strategy: 'top-k', budget: 20 },
    });
    const up = await app.inject({
      method: 'PUT',
      url: '/api/v1/admin/policies/db/services',
      headers: { ...bearer(t.admin), 'content-type': 'text/plain' },
      payload: 'postgresql\t5432/tcp\nmysql\t3306/tcp\nsnmp\t161/udp\n',
    });
    expect(up.statusCode).toBe(200);
    expect(up.json().mustHave).toEqual([5432, 3306]);
    let w = (await getWork(app, t.agents[0]!))!;
    while (w.ip !== '198.18.10.2') w = (await getWork(app, t.agents[0]!))!;
    expect(w.ports).toEqual(expect.arrayContaining([3306, 5432]));
    expect(w.ports.length).toBe(20);
    const badFile = await app.inject({
      method: 'PUT',
      url: '/api/v1/admin/policies/db/services',
      headers: { ...bearer(t.admin), 'content-type': 'text/plain' },
      payload: 'x\tnope\n',
    });
    expect(badFile.statusCode).toBe(400);
    expect(badFile.json().message).toMatch(/services:1/);
    const badPolicy = await app.inject({
      method: 'PUT',
      url: '/api/v1/admin/policies/db',
      headers: bearer(t.admin),
      payload: { strategy: 'nope' },
    });
    expect(badPolicy.statusCode).toBe(400);
    expect(badPolicy.json().message).toMatch(/unknown strategy "nope"/);
    const badScript = await app.inject({
      method: 'PUT',
      url: '/api/v1/admin/policies/db',
      headers: bearer(t.admin),
      payload: { strategy: 'top-k', scan: { scripts: ['smb-brute'] } },
    });
    expect(badScript.statusCode).toBe(400);
    expect(badScript.json().message).toMatch(/allowlist/);
  });

  it('serves /healthz, /metrics and the OpenAPI document', async () => {
    expect((await app.inject({ method: 'GET', url: '/healthz' })).json()).toMatchObject({
      status: 'ok',
      store: 'sqlite',
      scopeAddresses: '3',
    });
    const metrics = (await app.inject({ method: 'GET', url: '/metrics' })).body;
    expect(metrics).toMatch(/portbandit_scope_addresses 3/);
    expect(metrics).toMatch(/portbandit_tag_estimated_service_coverage_ratio\{tag=""\}/);
    const doc = (await app.inject({ method: 'GET', url: '/docs/json' })).json();
    expect(Object.keys(doc.paths)).toEqual(
      expect.arrayContaining(['/api/v1/agent/work', '/api/v1/agent/results', '/api/v1/search', '/api/v1/events']),
    );
  });
});

describe('configuration', () => {
  it('validates flags, env and file once, naming the source', () => {
    expect(resolveConfig({ env: { PORTBANDIT_PORT: '9000' }, flags: { host: '127.0.0.2' } })).toMatchObject({
      port: 9000,
      host: '127.0.0.2',
      dataDir: './data',
    });
    expect(() => resolveConfig({ env: { PORTBANDIT_PORT: 'x' } })).toThrow(
      /env PORTBANDIT_PORT: port: expected an integer from 0 to 65535/,
    );
    expect(() => resolveConfig({ flags: { leaseSeconds: 0 } })).toThrow(/--lease-seconds/);
    const data = tempDataDir();
    try {
      const file = join(data.dir, 'c.json');
      writeFileSync(file, JSON.stringify({ port: 1234, colour: 'red' }));
      expect(() => resolveConfig({ file })).toThrow(/unknown setting "colour"/);
      writeFileSync(file, JSON.stringify({ port: 1234 }));
      const c = resolveConfig({ file, flags: { port: 4321 } });
      expect(c.port).toBe(4321);
      expect(Object.isFrozen(c)).toBe(true);
    } finally {
      data.cleanup();
    }
  });
});
