import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import type { FastifyInstance } from 'fastify';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { buildApp, databasePath } from '../../src/coordinator/app.js';
import { resolveConfig } from '../../src/coordinator/config.js';
import { PortbanditError } from '../../src/core/errors.js';
import { openStore } from '../../src/store/open-store.js';
import type { Store } from '../../src/store/types.js';
import { addScope, bearer, getWork, manualClock, openApp, resultFor, submit, tempDataDir, tokens } from './helpers.js';
import { cliProcessArgs } from '../helpers/cli-process.js';

/** issue 11, coordinator side: authentication first, honest timestamps, bounded free-form fields, no leaks. */

const ROUTES: Array<[method: 'GET' | 'POST' | 'PUT' | 'DELETE', url: string]> = [
  ['GET', '/api/v1/agent/work?bogus=1'],
  ['POST', '/api/v1/agent/results'],
  ['POST', '/api/v1/agent/refused'],
  ['POST', '/api/v1/agent/release'],
  ['GET', '/api/v1/admin/scope?list=nope'],
  ['POST', '/api/v1/admin/scope'],
  ['POST', '/api/v1/admin/scope/remove'],
  ['PUT', '/api/v1/admin/scope/import'],
  ['GET', '/api/v1/admin/scope/export?bogus=1'],
  ['GET', '/api/v1/admin/cycle'],
  ['POST', '/api/v1/admin/cycle/restart'],
  ['POST', '/api/v1/admin/rescan'],
  ['GET', '/api/v1/admin/queue'],
  ['GET', '/api/v1/admin/policies'],
  ['GET', '/api/v1/admin/policies/bad%20tag'],
  ['PUT', '/api/v1/admin/policies/dmz'],
  ['PUT', '/api/v1/admin/policies/dmz/services'],
  ['DELETE', '/api/v1/admin/policies/dmz'],
  ['GET', '/api/v1/admin/policies/dmz/learned?limit=0'],
  ['GET', '/api/v1/admin/agents'],
  ['POST', '/api/v1/admin/agents'],
  ['DELETE', '/api/v1/admin/agents/agent_x'],
  ['GET', '/api/v1/admin/tokens'],
  ['POST', '/api/v1/admin/tokens'],
  ['DELETE', '/api/v1/admin/tokens/admin_x'],
  ['GET', '/api/v1/search?bogus=1'],
  ['GET', '/api/v1/hosts/not-an-ip'],
  ['GET', '/api/v1/hosts/198.18.0.1/history?limit=0'],
  ['GET', '/api/v1/hosts/198.18.0.1/diff?bogus=1'],
  ['GET', '/api/v1/events?cursor=abc'],
  ['GET', '/api/v1/events?q=cpe:x'],
  ['GET', '/api/v1/export/nmap?ip=not-an-ip'],
  ['GET', '/api/v1/admin/alerts'],
  ['POST', '/api/v1/admin/alerts'],
  ['DELETE', '/api/v1/admin/alerts/nope'],
  ['GET', '/api/v1/admin/alerts/dead'],
  ['GET', '/api/v1/stats?hours=0'],
  ['GET', '/api/v1/export/recording?since=-1'],
];

describe('authentication before parsing and validation', () => {
  const data = tempDataDir();
  let app: FastifyInstance;
  beforeAll(async () => {
    app = await openApp(data.dir, Date.now, { authFailuresPerMinute: 10_000 });
  });
  afterAll(async () => {
    await app.close();
    data.cleanup();
  });

  test('every API route answers an anonymous caller with a bad body or query 401, never the schema', async () => {
    for (const [method, url] of ROUTES) {
      const payload =
        method === 'GET' || method === 'DELETE'
          ? undefined
          : method === 'PUT' && url.endsWith('import')
            ? '\u0000not a scope'
            : '{"bogus": [[[['; // malformed JSON
      const res = await app.inject({
        method,
        url,
        ...(payload !== undefined
          ? { payload, headers: { 'content-type': url.endsWith('import') || url.endsWith('services') ? 'text/plain' : 'application/json' } }
          : {}),
      });
      expect([res.statusCode, method, url]).toEqual([401, method, url]);
      expect(res.json()).toMatchObject({ code: 'PB_ERR_UNAUTHORIZED' });
      expect(res.body).not.toMatch(/body\/|querystring|must be|JSON/);
    }
  });

  test('the UI sends an anonymous browser to the sign-in page before validating its query', async () => {
    const res = await app.inject({ method: 'GET', url: '/ui/search?page=0' });
    expect(res.statusCode).toBe(303);
  });
});

describe('submission bounds', () => {
  const data = tempDataDir();
  const clock = manualClock();
  let app: FastifyInstance;
  let admin: string;
  let agent: string;
  beforeAll(async () => {
    app = await openApp(data.dir, clock.now, { leaseSeconds: 600 });
    const t = await tokens(app, 1);
    admin = t.admin;
    agent = t.agents[0]!;
    await addScope(app, admin, [{ range: '198.18.7.0/28', tags: ['t'] }]);
  });
  afterAll(async () => {
    await app.close();
    data.cleanup();
  });

  test('a forged finishedAt in the far future (or a startedAt before the lease) is refused, and later genuine scans become "latest"', async () => {
    const work = (await getWork(app, agent))!;
    const forged = { ...resultFor(work, [], clock.now()), startedAt: 0, finishedAt: 8_640_000_000_000_000 };
    const res = await submit(app, agent, forged);
    expect(res.statusCode).toBe(400);
    expect(res.json()).toMatchObject({ code: 'PB_ERR_TIMESTAMP', message: expect.stringMatching(/^finishedAt: .*in the future/) });
    const early = await submit(app, agent, { ...resultFor(work, [], clock.now()), startedAt: work.issuedAt - 3_600_000 });
    expect(early.json()).toMatchObject({ code: 'PB_ERR_TIMESTAMP', message: expect.stringMatching(/^startedAt: .*before lease/) });
    const backwards = await submit(app, agent, {
      ...resultFor(work, [], clock.now()),
      startedAt: clock.now(),
      finishedAt: clock.now() - 1,
    });
    expect(backwards.json()).toMatchObject({ code: 'PB_ERR_TIMESTAMP' });
    // A genuine result is accepted and is the host's latest.
    clock.advance(1000);
    const ok = await submit(app, agent, resultFor(work, [work.ports[0]!], clock.now()));
    expect(ok.statusCode, ok.body).toBe(200);
    const latest = await app.inject({ method: 'GET', url: `/api/v1/hosts/${work.ip}`, headers: bearer(admin) });
    expect(latest.json()).toMatchObject({ scanId: work.leaseId, finishedAt: clock.now() });
  });

  test('the lease deadline is enforced at submit, before any sweep has expired the lease', async () => {
    const work = (await getWork(app, agent))!;
    clock.advance(601_000);
    const res = await submit(app, agent, resultFor(work, [], clock.now()));
    expect(res.statusCode).toBe(409);
    expect(res.json()).toMatchObject({ code: 'PB_ERR_LEASE_EXPIRED' });
  });

  test('free-form fields nested 5,000 or 3,000 deep, or 6.4 MB large, are refused with a 400 naming the field', async () => {
    // Built as text: JSON.stringify itself overflows on such nesting.
    const deepHost = `${'{"a":'.repeat(5000)}"x"${'}'.repeat(5000)}`;
    const deepList = `${'['.repeat(3000)}${']'.repeat(3000)}`;
    const withField = (body: object, field: string, json: string) =>
      `${JSON.stringify(body).slice(0, -1)},${JSON.stringify(field)}:${json}}`;
    type Work = NonNullable<Awaited<ReturnType<typeof getWork>>>;
    const cases: Array<[string, (w: Work) => string, RegExp]> = [
      ['host 5,000 deep', (w) => withField(resultFor(w, [], clock.now()), 'host', deepHost), /^host: nests deeper than 32/],
      [
        'fields 3,000 deep',
        (w) =>
          JSON.stringify({
            ...resultFor(w, [], clock.now()),
            ports: [{ port: w.ports[0]!, state: 'open', scripts: [{ id: 's', output: '', fields: '@@' }] }],
          }).replace('"@@"', deepList),
        /^ports\[0\]\.scripts\[0\]\.fields: nests deeper/,
      ],
      [
        'host of 6.4 MB',
        (w) => JSON.stringify({ ...resultFor(w, [], clock.now()), host: { blob: 'x'.repeat(6_400_000) } }),
        /^host: is \d+ bytes of JSON; at most 65536/,
      ],
    ];
    for (const [name, make, message] of cases) {
      const work = (await getWork(app, agent))!;
      const res = await app.inject({
        method: 'POST',
        url: '/api/v1/agent/results',
        headers: { ...bearer(agent), 'content-type': 'application/json' },
        payload: make(work),
      });
      expect([name, res.statusCode]).toEqual([name, 400]);
      expect(res.json()).toMatchObject({ code: 'PB_ERR_FIELD_LIMIT', message: expect.stringMatching(message) });
      expect(res.body).not.toContain(data.dir);
    }
  });

  test('an agent reports a refused work item: recorded for its own lease, refused for unknown or foreign ones', async () => {
    const work = (await getWork(app, agent))!;
    const other = (await app.coordinator.createAgent('other')).token;
    const post = (token: string, leaseId: string) =>
      app.inject({ method: 'POST', url: '/api/v1/agent/refused', headers: bearer(token), payload: { leaseId, reason: 'outside --allow' } });
    expect((await post(agent, work.leaseId)).json()).toEqual({ recorded: true });
    expect((await post(agent, 'lease_unknown')).statusCode).toBe(409);
    expect((await post(other, work.leaseId)).statusCode).toBe(403);
    expect((await post(admin, work.leaseId)).statusCode).toBe(403);
  });
});

describe('errors never leak paths; streams refuse bad cursors before they start', () => {
  const data = tempDataDir();
  let app: FastifyInstance;
  let admin: string;
  let store: Store;
  beforeAll(async () => {
    store = await openStore({ kind: 'sqlite', path: databasePath(data.dir) });
    const where = databasePath(data.dir);
    // A store whose reads fail with messages naming the database file (as SQLite's do).
    const failing = new Proxy(store, {
      get(target, prop, receiver) {
        if (prop === 'getLatestScan')
          return async () => Promise.reject(new PortbanditError('PB_ERR_STORE', `cannot read ${where}: disk I/O error`));
        if (prop === 'hostHistory') return async () => Promise.reject(new RangeError(`Maximum call stack size exceeded at ${where}`));
        const value = Reflect.get(target, prop, receiver) as unknown;
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      },
    });
    const config = resolveConfig({ flags: { dataDir: data.dir, logLevel: 'silent' }, env: {} });
    app = await buildApp({ config, store: failing, sweepTimer: false });
    admin = (await app.coordinator.createAdminToken('a')).token;
  });
  afterAll(async () => {
    await app.close();
    await store.close();
    data.cleanup();
  });

  test('a 500 says what failed by code and summary, never the database path', async () => {
    for (const url of ['/api/v1/hosts/198.18.0.1', '/api/v1/hosts/198.18.0.1/history']) {
      const res = await app.inject({ method: 'GET', url, headers: bearer(admin) });
      expect(res.statusCode).toBe(500);
      expect(res.body).not.toContain(data.dir);
      expect(res.body).not.toMatch(/portbandit\.db|call stack/);
    }
    const res = await app.inject({ method: 'GET', url: '/api/v1/hosts/198.18.0.1', headers: bearer(admin) });
    expect(res.json()).toMatchObject({ code: 'PB_ERR_STORE', message: 'The store failed. (details in the server log)' });
  });

  test('GET /api/v1/events?cursor=abc answers 400 at once instead of a 200 stream that never ends', async () => {
    const url = await app.listen({ host: '127.0.0.1', port: 0 });
    const res = await fetch(`${url}/api/v1/events?cursor=abc&follow=true`, { headers: bearer(admin), signal: AbortSignal.timeout(5000) });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ code: 'PB_ERR_CURSOR', message: expect.stringContaining('cursor') });
  });
});

describe('revocation', () => {
  let data: ReturnType<typeof tempDataDir>;
  beforeEach(() => {
    data = tempDataDir();
  });
  afterEach(() => data.cleanup());

  test('DELETE /api/v1/admin/tokens/:id revokes an admin token at once', async () => {
    const app = await openApp(data.dir, Date.now);
    try {
      const first = await app.coordinator.createAdminToken('first');
      const second = await app.coordinator.createAdminToken('second');
      const list = await app.inject({ method: 'GET', url: '/api/v1/admin/tokens', headers: bearer(first.token) });
      expect((list.json() as { tokens: Array<{ id: string }> }).tokens.map((t) => t.id).sort()).toEqual([first.id, second.id].sort());
      expect(list.body).not.toContain(second.token);
      const del = await app.inject({ method: 'DELETE', url: `/api/v1/admin/tokens/${second.id}`, headers: bearer(first.token) });
      expect(del.json()).toEqual({ deleted: true });
      expect((await app.inject({ method: 'GET', url: '/api/v1/admin/cycle', headers: bearer(second.token) })).statusCode).toBe(401);
      expect((await app.inject({ method: 'GET', url: '/api/v1/admin/cycle', headers: bearer(first.token) })).statusCode).toBe(200);
    } finally {
      await app.close();
    }
  });

  test('`token revoke` from the CLI stops an agent of a running server process within about a second', async () => {
    // Arrange: a real `portbandit serve` process on the data directory, and an agent token.
    await runCliOut(['token', 'create', '--admin', 'ops', '--data', data.dir]); // not a first start: no bootstrap token
    const made = await runCliOut(['token', 'create', '--agent', 'victim', '--json', '--data', data.dir]);
    const { id, token } = JSON.parse(made) as { id: string; token: string };
    const server = spawn(process.execPath, [...cliProcessArgs(), 'serve', '--data', data.dir, '--port', '0', '--log-level', 'silent'], {
      cwd: new URL('../..', import.meta.url).pathname,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    try {
      const url = await listeningUrl(server);
      const ask = async () => (await fetch(`${url}/api/v1/agent/work`, { headers: bearer(token) })).status;
      expect(await ask()).toBe(200);
      // Let the server's first sweeps pass (it also reloads agents then): the revocation must be
      // seen by a server that has been running, not only by one that happens to start up.
      await new Promise((r) => setTimeout(r, 2500));
      expect(await ask()).toBe(200);
      // Act: revoke in another process (the CLI works on the data directory).
      await runCliOut(['token', 'revoke', id, '--data', data.dir]);
      const revokedAt = performance.now();
      // Assert: refused within about a second (a cached agent token is re-checked every second;
      // 2 s leaves room for a loaded machine).
      let accepted = 0;
      let status = 200;
      while (status === 200 && performance.now() - revokedAt < 5000) {
        status = await ask();
        if (status === 200) accepted++;
        await new Promise((r) => setTimeout(r, 50));
      }
      const took = performance.now() - revokedAt;
      process.stderr.write(`revocation: refused after ${Math.round(took)} ms (${accepted} requests accepted meanwhile)\n`);
      expect(status).toBe(401);
      expect(took).toBeLessThan(2000);
    } finally {
      server.kill('SIGTERM');
      await once(server, 'exit');
    }
  }, 60_000);
});

/** Run the CLI in this process, returning stdout (an error when it fails). */
async function runCliOut(args: string[]): Promise<string> {
  const { code, out } = await runCli(args);
  if (code !== 0) throw new Error(`portbandit ${args.join(' ')} exited ${code}`);
  return out;
}

/** The URL a `serve` child prints on stderr once it listens. */
async function listeningUrl(child: ChildProcess): Promise<string> {
  let text = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`serve did not start: ${text}`)), 30_000);
    child.stderr!.on('data', (chunk: Buffer) => {
      text += chunk.toString();
      const m = /listening on (http:\/\/\S+?) /.exec(text);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
    child.once('exit', (code) => reject(new Error(`serve exited ${code}: ${text}`)));
  });
}
