import { writeFileSync } from 'node:fs';
import { Writable } from 'node:stream';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../src/coordinator/app.js';
import { resolveConfig } from '../../src/coordinator/config.js';
import { startServer } from '../../src/coordinator/server.js';
import { formatNmapXml } from '../../src/coordinator/nmap-export.js';
import { within } from '../helpers/net.js';
import { asDnsName, createResolver, isTargetAddress } from '../../src/coordinator/names.js';
import type { WorkItem } from '../../src/protocol/protocol.js';
import { isPortbanditError } from '../../src/core/errors.js';
import { runCli } from '../helpers/cli.js';
import { type TestDnsServer, startDnsServer } from '../helpers/dns-server.js';
import { addScope, bearer, getWork, manualClock, resultFor, submit, tempDataDir } from './helpers.js';

async function drain(app: FastifyInstance, token: string): Promise<WorkItem[]> {
  const out: WorkItem[] = [];
  for (let i = 0; i < 50; i++) {
    const w = await getWork(app, token);
    if (!w) break;
    out.push(w);
  }
  return out;
}

describe('targets by name, resolved by a DNS server on loopback', () => {
  let data: ReturnType<typeof tempDataDir>;
  let dns: TestDnsServer;
  let app: FastifyInstance;
  let admin: string;
  let agent: string;
  const clock = manualClock();

  beforeEach(async () => {
    data = tempDataDir();
    dns = await startDnsServer({
      'files.lab.example': ['198.18.20.1', '198.18.20.2', '::ffff:c612:1409'], // the AAAA is 198.18.20.9, IPv4-mapped
      'mirror.lab.example': ['198.18.20.2'],
      'blocked.lab.example': ['198.18.21.5', '127.0.0.2'],
    });
    const config = resolveConfig({ flags: { dataDir: data.dir, logLevel: 'silent' }, env: {} });
    app = await buildApp({ config, now: clock.now, sweepTimer: false, resolver: createResolver(`dns:127.0.0.1:${dns.port}`) });
    admin = (await app.coordinator.createAdminToken('t')).token;
    agent = (await app.coordinator.createAgent('a')).token;
  });
  afterEach(async () => {
    await app.close();
    await dns.close();
    data.cleanup();
  });

  it('scans every A/AAAA address of a name with its tags, minus the blocklist and non-target addresses, and keeps the name on the visit (name:)', async () => {
    await addScope(app, admin, [{ range: '198.18.21.0/24' }, { range: '127.0.0.0/8' }], 'blocklist');
    await addScope(app, admin, [
      { range: 'Files.Lab.Example.', tags: ['lab'] },
      { range: 'mirror.lab.example', tags: ['web'] },
      { range: 'blocked.lab.example', tags: ['lab'] },
      { range: 'nowhere.lab.example' },
    ]);
    const listed = await app.inject({ method: 'GET', url: '/api/v1/admin/scope?list=scope', headers: bearer(admin) });
    expect((listed.json() as { entries: Array<{ range: string }> }).entries.map((e) => e.range)).toContain('files.lab.example');
    expect(dns.queries).toContain('files.lab.example/A');
    expect(dns.queries).toContain('files.lab.example/AAAA');

    const items = await drain(app, agent);
    const byIp = new Map(items.map((w) => [w.ip, w]));
    expect([...byIp.keys()].sort()).toEqual(['198.18.20.1', '198.18.20.2', '198.18.20.9']);
    expect(byIp.get('198.18.20.1')!.tags).toEqual(['lab']);
    expect(byIp.get('198.18.20.2')!.tags).toEqual(['lab', 'web']); // two names, one address: both tags
    expect(app.coordinator.lookup('127.0.0.2')).toBeUndefined(); // resolved, but blocklisted

    const w = byIp.get('198.18.20.2')!;
    clock.advance(1000);
    expect((await submit(app, agent, resultFor(w, [w.ports[0]!], clock.now()))).statusCode).toBe(200);
    const found = await app.inject({ method: 'GET', url: '/api/v1/search?q=name:mirror.lab.example', headers: bearer(admin) });
    const hits = (found.json() as { items: Array<{ ip: string; names?: string[] }> }).items;
    expect(hits.map((h) => [h.ip, h.names])).toEqual([['198.18.20.2', ['files.lab.example', 'mirror.lab.example']]]);
    const none = await app.inject({ method: 'GET', url: '/api/v1/search?q=name:blocked.lab.example', headers: bearer(admin) });
    expect((none.json() as { total: number }).total).toBe(0);
  });

  it('resolves again for each cycle: the next cycle scans what the name points at then', async () => {
    await addScope(app, admin, [{ range: 'files.lab.example', tags: ['lab'] }]);
    expect((await drain(app, agent)).map((w) => w.ip).sort()).toEqual(['198.18.20.1', '198.18.20.2', '198.18.20.9']);
    dns.records.set('files.lab.example', ['198.18.20.3']);
    // Within the cycle's period nothing more is handed out, and nothing is resolved.
    const before = dns.queries.length;
    expect(await getWork(app, agent)).toBeNull();
    expect(dns.queries.length).toBe(before);
    clock.advance(86_400_000);
    // Two requests at the cycle boundary: neither may start the next cycle before the names resolved.
    const agent2 = (await app.coordinator.createAgent('b')).token;
    const [a, b] = await Promise.all([getWork(app, agent), getWork(app, agent2)]);
    const next = [a, b, ...(await drain(app, agent))].filter((w): w is WorkItem => w !== null);
    expect(next.map((w) => [w.ip, w.cycle])).toEqual([['198.18.20.3', 2]]);
    expect(app.coordinator.lookup('198.18.20.1')).toBeUndefined();
  });

  it('refuses names in the blocklist, and a mistyped address is not taken for a name', async () => {
    const res = await app.inject({
      method: 'POST',
      url: '/api/v1/admin/scope?list=blocklist',
      headers: bearer(admin),
      payload: { entries: [{ range: 'files.lab.example' }] },
    });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toMatchObject({ code: 'PB_ERR_ADDRESS' });
    const typo = await app.inject({
      method: 'POST',
      url: '/api/v1/admin/scope?list=scope',
      headers: bearer(admin),
      payload: { entries: [{ range: '198.18.0.300' }] },
    });
    expect(typo.statusCode).toBe(400);
    expect((await app.inject({ method: 'GET', url: '/api/v1/admin/scope?list=blocklist', headers: bearer(admin) })).json()).toMatchObject({
      entries: [],
    });
  });
});

describe('targets by name from an /etc/hosts-style file', () => {
  let data: ReturnType<typeof tempDataDir>;
  beforeEach(() => {
    data = tempDataDir();
  });
  afterEach(() => data.cleanup());

  it('resolves names from the file (aliases, comments, both families), re-reading it each resolution', async () => {
    const hosts = join(data.dir, 'hosts');
    writeFileSync(
      hosts,
      '# lab names\n198.18.30.1 files.lab.example files\n198.18.30.2   db.lab.example  # primary\n::ffff:198.18.30.3 files.lab.example\n',
    );
    const resolver = createResolver(`hosts:${hosts}`);
    expect(await resolver.resolve('files.lab.example')).toEqual(['198.18.30.1', '198.18.30.3']);
    expect(await resolver.resolve('nowhere.lab.example')).toEqual([]);
    writeFileSync(hosts, '198.18.30.7 files.lab.example\n');
    expect(await resolver.resolve('files.lab.example')).toEqual(['198.18.30.7']);

    const clock = manualClock();
    const config = resolveConfig({ flags: { dataDir: data.dir, logLevel: 'silent', resolver: `hosts:${hosts}` }, env: {} });
    const app = await buildApp({ config, now: clock.now, sweepTimer: false, resolver: createResolver(config.resolver) });
    try {
      const admin = (await app.coordinator.createAdminToken('t')).token;
      const agent = (await app.coordinator.createAgent('a')).token;
      await addScope(app, admin, [{ range: 'files.lab.example', tags: ['lab'] }]);
      expect((await drain(app, agent)).map((w) => w.ip)).toEqual(['198.18.30.7']);
    } finally {
      await app.close();
    }
  });

  it('refuses a bad hosts file naming the line, and bad resolver settings', () => {
    const hosts = join(data.dir, 'bad-hosts');
    writeFileSync(hosts, '198.18.30.1 ok.lab.example\nnot-an-address files.lab.example\n');
    const fail = (spec: string) => {
      try {
        createResolver(spec);
        return undefined;
      } catch (error) {
        return isPortbanditError(error, 'PB_ERR_CONFIG') ? error.where : 'wrong error';
      }
    };
    expect(fail(`hosts:${hosts}`)).toBe(`${hosts}:2`);
    expect(fail(`hosts:${join(data.dir, 'missing')}`)).toBe(join(data.dir, 'missing'));
    expect(fail('dns:not an address')).toBe('resolver');
    expect(fail('carrier-pigeon')).toBe('resolver');
  });

  it('the CLI adds names on a data directory without resolving them; serve refuses --dns with --resolver', async () => {
    const dns = await startDnsServer({ 'files.lab.example': ['198.18.30.1'] });
    try {
      const added = await runCli(['scope', 'add', 'files.lab.example', '--tag', 'lab', '--data', data.dir]);
      expect(added.code).toBe(0);
      const listed = await runCli(['scope', 'list', '--json', '--data', data.dir]);
      expect(JSON.parse(listed.out)).toMatchObject({ entries: [{ range: 'files.lab.example', tags: ['lab'] }] });
      expect(dns.queries).toEqual([]);
      const both = await runCli(['serve', '--dns', `127.0.0.1:${dns.port}`, '--resolver', 'system', '--data', data.dir]);
      expect(both.code).toBe(2);
      expect(both.err).toContain('--dns');
    } finally {
      await dns.close();
    }
  });
});

describe('names as scope entries', () => {
  it('accepts DNS names and refuses what could be a mistyped address', () => {
    expect(asDnsName('files.lab.example')).toBe('files.lab.example');
    expect(asDnsName('FILES.Lab.Example.')).toBe('files.lab.example');
    for (const bad of [
      '198.18.0.300',
      '198.18.0.1',
      'files',
      '-a.lab.example',
      'a..example',
      'a_b.example',
      ' files.lab.example',
      `${'a'.repeat(64)}.example`,
    ])
      expect(asDnsName(bad), bad).toBeUndefined();
    // (Unspecified, broadcast and multicast answers are dropped too; the house rule keeps such addresses out of tests.)
    expect(isTargetAddress('198.18.0.1')).toBe(true);
    expect(isTargetAddress('127.0.0.2')).toBe(true);
    expect(isTargetAddress('198.18.0.300')).toBe(false);
    expect(isTargetAddress('files.lab.example')).toBe(false);
  });
});

describe('portbandit serve with --dns (the real server: config, timers, HTTP on loopback)', () => {
  it('resolves a name added by the CLI next to the running server, within a sweep, with the configured DNS server', async () => {
    const data = tempDataDir();
    const dns = await startDnsServer({ 'files.lab.example': ['198.18.40.1', '198.18.40.2'] });
    const config = resolveConfig({
      // Errors only: a 500 then shows its cause in the test's output.
      flags: { dataDir: data.dir, port: 0, logLevel: 'error', resolver: `dns:127.0.0.1:${dns.port}`, sweepIntervalMs: 50 },
      env: {},
    });
    const app = await startServer(config, {}, new Writable({ write: (_c, _e, done) => done() }));
    try {
      const base = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`;
      const admin = (await app.coordinator.createAdminToken('t')).token;
      const made = (await (
        await fetch(`${base}/api/v1/admin/agents`, {
          method: 'POST',
          headers: { ...bearer(admin), 'content-type': 'application/json' },
          body: JSON.stringify({ name: 'int', groups: ['internal'] }),
        })
      ).json()) as { token: string };
      // Another process's edit (the CLI on the same data directory): it sends no DNS query itself.
      expect((await runCli(['scope', 'add', 'files.lab.example', '--tag', 'lab', '--data', data.dir])).code).toBe(0);
      expect(
        (await runCli(['policy', 'set', 'lab', '--strategy', 'top-k', '--budget', '10', '--groups', 'internal', '--data', data.dir])).code,
      ).toBe(0);
      let ips: string[] = [];
      await within(5000, async () => {
        const res = await fetch(`${base}/api/v1/agent/work?max=8`, { headers: bearer(made.token) });
        const text = await res.text();
        // Any other answer fails here with what it was (a 503 or an answer without items).
        expect(res.status, text).toBe(200);
        const body = JSON.parse(text) as { items?: WorkItem[] };
        expect(body.items, text).toBeDefined();
        ips = [...ips, ...body.items!.map((w) => w.ip)];
        return ips.length >= 2;
      });
      expect(ips.sort()).toEqual(['198.18.40.1', '198.18.40.2']);
      expect(dns.queries).toContain('files.lab.example/A');
    } finally {
      await app.close();
      await dns.close();
      data.cleanup();
    }
  });
});

describe('names in the nmap XML export', () => {
  it('lists the scope names of the address as hostnames, next to those the scanner reported', () => {
    const xml = formatNmapXml({
      scanId: 's1',
      ip: '198.18.40.1',
      tags: ['lab'],
      agentId: 'a',
      startedAt: 1000,
      finishedAt: 2000,
      epoch: 1,
      cycle: 1,
      ports: [],
      preflight: 'connect',
      probedPorts: '22',
      timings: {},
      host: { hostnames: ['files.lab.example', 'reverse.lab.example'] },
      names: ['files.lab.example', 'mirror.lab.example'],
    });
    expect(xml).toContain(
      '<hostnames><hostname name="files.lab.example" type="user"/><hostname name="reverse.lab.example" type="user"/><hostname name="mirror.lab.example" type="user"/></hostnames>',
    );
  });
});
