import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readNmapSightings } from '../../src/importers/index.js';
import { loadRecording } from '../../src/recording/index.js';
import type { StoreEvent } from '../../src/store/index.js';
import { runCli } from '../helpers/cli.js';
import { addScope, getWork, manualClock, openApp, resultFor, submit, tempDataDir, tokens } from './helpers.js';

const CLI = fileURLToPath(new URL('../../dist/src/cli/main.js', import.meta.url));

const events = (out: string): StoreEvent[] =>
  out
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as StoreEvent);
const cursorOf = (err: string): string => /cursor (\S+) \(continue/.exec(err)![1]!;

/** Poll `check` every 50 ms until it holds or `ms` pass. */
async function within(ms: number, check: () => boolean): Promise<void> {
  const started = Date.now();
  while (!check()) {
    if (Date.now() - started > ms) throw new Error(`not within ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

// One coordinator over a real SQLite file, listening on loopback: every command runs against
// its data directory (--data) and its API (--server) and must print the same bytes.
describe('portbandit events and export, on a data directory and on a running coordinator', () => {
  const data = tempDataDir();
  const clock = manualClock();
  let app: FastifyInstance;
  let t: Awaited<ReturnType<typeof tokens>>;
  let server: string[];
  const local = () => ['--data', data.dir];

  /** One visit of the next work item, its first port open in odd cycles (so ports open and close). */
  async function visit(): Promise<void> {
    const w = (await getWork(app, t.agents[0]!))!;
    clock.advance(1000);
    const res = await submit(app, t.agents[0]!, resultFor(w, (w.cycle ?? 0) % 2 === 1 ? [w.ports[0]!] : [], clock.now()));
    expect(res.statusCode).toBe(200);
  }

  beforeAll(async () => {
    app = await openApp(data.dir, clock.now);
    t = await tokens(app);
    await addScope(app, t.admin, [{ range: '198.18.20.0/30', tags: ['lab'] }]);
    await app.coordinator.setPolicy('', { strategy: 'fixed', budget: 3, params: { ports: [22, 80, 3389] }, periodSeconds: null });
    for (let i = 0; i < 8; i++) await visit();
    const address = await app.listen({ port: 0, host: '127.0.0.1' });
    server = ['--server', address];
    process.env.PORTBANDIT_ADMIN_TOKEN = t.admin;
  });
  afterAll(async () => {
    delete process.env.PORTBANDIT_ADMIN_TOKEN;
    await app.close();
    data.cleanup();
  });

  it('lists the events, filtered by an event query, the same from --data and --server', async () => {
    const all = await runCli(['events', '--json', ...local()]);
    expect(all.code).toBe(0);
    const list = events(all.out);
    expect(new Set(list.map((e) => e.kind))).toEqual(new Set(['host-new', 'service-new', 'service-closed']));
    expect((await runCli(['events', '--json', ...server])).out).toBe(all.out);

    const rdpNew = await runCli(['events', 'kind:service-new port:22 tag:lab', '--json', ...server]);
    expect(events(rdpNew.out).length).toBeGreaterThan(0);
    expect(events(rdpNew.out).every((e) => e.kind === 'service-new' && e.port === 22)).toBe(true);
    expect(rdpNew.out).toBe((await runCli(['events', 'kind:service-new port:22 tag:lab', '--json', ...local()])).out);

    const text = await runCli(['events', 'kind:service-closed', ...local()]);
    expect(text.out.split('\n')[0]).toMatch(/^2026-11-23T\S+Z\tservice-closed\t198\.18\.20\.\d:22\tlab\thttp nginx 1\.25$/);
  });

  it('refuses an unknown kind or field with the column, on both paths', async () => {
    for (const where of [local(), server]) {
      const bad = await runCli(['events', 'kind:service-new cpe:x', ...where]);
      expect(bad.code).toBe(2);
      expect(bad.err).toMatch(/query column 18: unknown field 'cpe'.*for events.*PB_ERR_QUERY/);
    }
    expect((await runCli(['events', 'kind:gone', ...server])).err).toMatch(/'gone' is not an event kind/);
    // The API refuses it too, as a plain 400 before any stream starts.
    const res = await fetch(`${server[1]}/api/v1/events?q=${encodeURIComponent('port:22 cpe:x')}`, {
      headers: { authorization: `Bearer ${t.admin}` },
    });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ code: 'PB_ERR_QUERY', message: expect.stringMatching(/query column 9: unknown field 'cpe'/) });
  });

  it('continues from the cursor it printed (--cursor) or kept (--cursor-file), across --data and --server', async () => {
    const first = await runCli(['events', '--json', ...server]);
    const cursor = cursorOf(first.err);
    const file = join(data.dir, 'events.cursor');
    expect((await runCli(['events', '--json', '--cursor-file', file, ...local()])).out).toBe(first.out);
    expect(readFileSync(file, 'utf8').trim()).toBe(cursor);
    expect(events((await runCli(['events', '--json', '--cursor', cursor, ...local()])).out)).toEqual([]);

    for (let i = 0; i < 4; i++) await visit();
    const next = events((await runCli(['events', '--json', '--cursor', cursor, ...server])).out);
    expect(next.length).toBeGreaterThan(0);
    expect(next.every((e) => Number(e.id) > Number(cursor))).toBe(true);
    expect(events((await runCli(['events', '--json', '--cursor-file', file, ...local()])).out)).toEqual(next);
    expect(events((await runCli(['events', '--json', '--cursor-file', file, ...server])).out)).toEqual([]);
  });

  it('exports the history as a recording, visits as NDJSON and a visit as nmap XML, the same both ways', async () => {
    const rec = await runCli(['export', 'recording', ...local()]);
    expect(rec.code).toBe(0);
    expect((await runCli(['export', 'recording', ...server])).out).toBe(rec.out);
    const file = join(data.dir, 'history.ndjson');
    writeFileSync(file, rec.out);
    const loaded = await loadRecording(file);
    expect(loaded.hostIp.length).toBe(4);

    const json = await runCli(['export', 'json', ...local()]);
    const visits = json.out
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { ip: string; scanId: string; ports: { port: number; state: string }[] });
    expect(visits.length).toBe((await app.coordinator.store.counts()).scans);
    expect((await runCli(['export', 'json', ...server])).out).toBe(json.out);
    const port22 = await runCli(['export', 'json', 'port:22', '--latest', ...server]);
    expect(port22.out).toBe((await runCli(['export', 'json', 'port:22', '--latest', ...local()])).out);
    for (const line of port22.out.split('\n').filter(Boolean))
      expect(JSON.parse(line).ports).toContainEqual(expect.objectContaining({ port: 22, state: 'open' }));

    const withOpen = visits.find((v) => v.ports.some((p) => p.state === 'open'))!;
    const xmlFile = join(data.dir, 'visit.xml');
    const nmap = await runCli(['export', 'nmap', '--host', withOpen.ip, '--scan', withOpen.scanId, '--out', xmlFile, ...local()]);
    expect(nmap.code).toBe(0);
    const remote = await runCli(['export', 'nmap', '--host', withOpen.ip, '--scan', withOpen.scanId, ...server]);
    expect(remote.out).toBe(readFileSync(xmlFile, 'utf8'));
    const { sightings } = readNmapSightings([xmlFile]);
    expect(sightings[0]!.open).toEqual(withOpen.ports.filter((p) => p.state === 'open').map((p) => p.port));

    for (const where of [local(), server]) {
      const missing = await runCli(['export', 'nmap', '--host', withOpen.ip, '--scan', 'nope', ...where]);
      expect(missing.code).toBe(2);
      expect(missing.err).toMatch(/no scan "nope" of 198\.18\.20\.\d.*PB_ERR_NOT_FOUND/);
    }
  });

  it('needs an admin token for --server, and refuses a wrong one', async () => {
    delete process.env.PORTBANDIT_ADMIN_TOKEN;
    try {
      expect((await runCli(['events', ...server])).err).toMatch(/an admin token is required with --server/);
      const tokenFile = join(data.dir, 'bad.token');
      writeFileSync(tokenFile, 'pbk_wrong\n');
      const wrong = await runCli(['export', 'json', '--token-file', tokenFile, ...server]);
      expect(wrong.code).toBe(2);
      expect(wrong.err).toMatch(/PB_ERR_UNAUTHORIZED/);
    } finally {
      process.env.PORTBANDIT_ADMIN_TOKEN = t.admin;
    }
  });

  describe.skipIf(!existsSync(CLI))('--follow (a CLI process, stopped with SIGINT)', () => {
    async function follow(
      args: string[],
      during: () => Promise<void>,
    ): Promise<{ out: string; err: string; code: number | null; lines: number }> {
      const child: ChildProcess = spawn(process.execPath, [CLI, 'events', '--follow', '--json', ...args], {
        env: { ...process.env, PORTBANDIT_ADMIN_TOKEN: t.admin },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      let err = '';
      child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
      child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
      // Let the follower catch up before the new visits.
      await new Promise((resolve) => setTimeout(resolve, 1500));
      const before = out.split('\n').filter(Boolean).length;
      await during();
      await within(10_000, () => out.split('\n').filter(Boolean).length > before);
      child.kill('SIGINT');
      const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
      return { out, err, code, lines: before };
    }

    for (const mode of ['server', 'data'] as const) {
      it(`streams new events as they arrive from --${mode} and prints the cursor to resume from at exit`, async () => {
        const start = cursorOf((await runCli(['events', ...server])).err);
        const file = join(data.dir, `follow-${mode}.cursor`);
        writeFileSync(file, start);
        const res = await follow([...(mode === 'server' ? server : local()), '--cursor-file', file], async () => {
          for (let i = 0; i < 4; i++) await visit();
        });
        expect(res.code).toBe(0);
        expect(res.lines).toBe(0);
        const seen = events(res.out);
        expect(seen.length).toBeGreaterThan(0);
        const cursor = cursorOf(res.err);
        expect(readFileSync(file, 'utf8').trim()).toBe(cursor);
        // Exactly the events between the two cursors (a SIGINT between a batch and its
        // checkpoint may have printed a few more, which a resumed follower prints again).
        const between = events((await runCli(['events', '--json', '--cursor', start, ...local()])).out).filter(
          (e) => Number(e.id) <= Number(cursor),
        );
        expect(between.length).toBeGreaterThan(0);
        expect(seen.slice(0, between.length)).toEqual(between);
      });
    }
  });
});
