import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { FastifyInstance } from 'fastify';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { buildApp } from '../../src/coordinator/app.js';
import { resolveConfig } from '../../src/coordinator/config.js';
import { addScope, bearer, getWork, manualClock, resultFor, submit, tempDataDir, tokens } from './helpers.js';

interface Received {
  readonly delivery: string;
  readonly status: number;
  readonly body: { rule: string; query: string; event: { id: string; kind: string; port?: number } };
}

/** A webhook receiver on loopback that answers each request with the next status of `answer`. */
async function receiver(answer: (n: number) => number): Promise<{ url: string; received: Received[]; close: () => Promise<void> }> {
  const received: Received[] = [];
  const read = async (req: IncomingMessage) => {
    let text = '';
    for await (const chunk of req) text += String(chunk);
    return JSON.parse(text) as Received['body'];
  };
  const server: Server = createServer((req, res) => {
    void read(req).then((body) => {
      const status = answer(received.length);
      received.push({ delivery: String(req.headers['x-portbandit-delivery']), status, body });
      res.writeHead(status).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return { url: `http://127.0.0.1:${port}/hook`, received, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

describe('alert rules delivered to webhooks', () => {
  let data: ReturnType<typeof tempDataDir>;
  let app: FastifyInstance;
  let t: Awaited<ReturnType<typeof tokens>>;
  const clock = manualClock();
  const open = async (sweepTimer = false) =>
    buildApp({
      config: resolveConfig({ flags: { dataDir: data.dir, logLevel: 'silent' }, env: {} }),
      now: clock.now,
      sweepTimer,
      alerts: { baseDelayMs: 5, maxAttempts: 3, timeoutMs: 2000 },
    });

  /** One cycle over the 4 hosts; in odd cycles port 22 is open (service-new), in even ones closed. */
  async function cycle(): Promise<void> {
    for (let i = 0; i < 4; i++) {
      const w = (await getWork(app, t.agents[0]!))!;
      clock.advance(1000);
      expect((await submit(app, t.agents[0]!, resultFor(w, (w.cycle ?? 0) % 2 === 1 ? [22] : [], clock.now()))).statusCode).toBe(200);
    }
  }
  const addRule = (name: string, query: string, url: string) =>
    app.inject({ method: 'POST', url: '/api/v1/admin/alerts', headers: bearer(t.admin), payload: { name, query, url } });

  beforeEach(async () => {
    data = tempDataDir();
    app = await open();
    t = await tokens(app);
    await addScope(app, t.admin, [{ range: '198.18.30.0/30', tags: ['dmz'] }]);
    await app.coordinator.setPolicy('', { strategy: 'fixed', budget: 3, params: { ports: [22, 80, 3389] }, periodSeconds: null });
  });
  afterEach(async () => {
    await app.close();
    data.cleanup();
  });

  it('retries after a failure and delivers each match exactly once, also after a restart', async () => {
    const hook = await receiver((n) => (n === 0 ? 500 : 200));
    try {
      expect((await addRule('ssh-dmz', 'kind:service-new port:22 tag:dmz', hook.url)).statusCode).toBe(200);
      await cycle();
      await app.alerts.runOnce();
      const ok = hook.received.filter((r) => r.status === 200);
      expect(ok).toHaveLength(4);
      expect(hook.received).toHaveLength(5);
      expect(hook.received[0]!.delivery).toBe(hook.received[1]!.delivery);
      expect(new Set(ok.map((r) => r.delivery)).size).toBe(4);
      expect(ok.every((r) => r.body.rule === 'ssh-dmz' && r.body.event.kind === 'service-new' && r.body.event.port === 22)).toBe(true);

      await app.alerts.runOnce();
      await app.close();
      app = await open();
      await app.alerts.runOnce();
      expect(hook.received).toHaveLength(5);

      // Closing events do not match; the next opening ones do, once each.
      await cycle();
      await cycle();
      await app.alerts.runOnce();
      expect(hook.received.filter((r) => r.status === 200)).toHaveLength(8);
      expect(new Set(hook.received.filter((r) => r.status === 200).map((r) => r.delivery)).size).toBe(8);
    } finally {
      await hook.close();
    }
  });

  it('puts what a webhook never accepts on the dead-letter list after the bounded retries', async () => {
    const hook = await receiver(() => 503);
    try {
      expect((await addRule('down', 'kind:service-new', hook.url)).statusCode).toBe(200);
      await cycle();
      await app.alerts.runOnce();
      expect(hook.received).toHaveLength(4 * 3);
      const dead = (await app.inject({ method: 'GET', url: '/api/v1/admin/alerts/dead', headers: bearer(t.admin) })).json() as {
        deadLetters: Array<{ rule: string; attempts: number; error: string; event: { kind: string } }>;
      };
      expect(dead.deadLetters).toHaveLength(4);
      expect(dead.deadLetters[0]).toMatchObject({ rule: 'down', attempts: 3, error: 'HTTP 503', event: { kind: 'service-new' } });
      await app.alerts.runOnce();
      expect(hook.received).toHaveLength(12);
    } finally {
      await hook.close();
    }
  });

  it('alerts only on events after the rule was made, and refuses bad rules', async () => {
    await cycle();
    const hook = await receiver(() => 200);
    try {
      expect((await addRule('late', '', hook.url)).statusCode).toBe(200);
      await app.alerts.runOnce();
      expect(hook.received).toHaveLength(0);
      await cycle();
      await app.alerts.runOnce();
      expect(hook.received.map((r) => r.body.event.kind).sort()).toEqual([
        'service-closed',
        'service-closed',
        'service-closed',
        'service-closed',
      ]);
    } finally {
      await hook.close();
    }
    const badQuery = await addRule('bad', 'kind:service-new cpe:x', 'http://127.0.0.1:9/');
    expect(badQuery.statusCode).toBe(400);
    expect(badQuery.json()).toMatchObject({ code: 'PB_ERR_QUERY' });
    expect((await addRule('bad', 'port:22', 'ftp://127.0.0.1/')).json()).toMatchObject({ code: 'PB_ERR_URL' });
    expect((await addRule('late', 'port:22', 'http://127.0.0.1:9/')).statusCode).toBe(409);
  });

  it('is delivered by the running coordinator in the background', async () => {
    await app.close();
    app = await open(true);
    const hook = await receiver(() => 200);
    try {
      expect((await addRule('bg', 'kind:service-new', hook.url)).statusCode).toBe(200);
      await cycle();
      const started = Date.now();
      while (hook.received.length < 4 && Date.now() - started < 10_000) await new Promise((resolve) => setTimeout(resolve, 50));
      expect(hook.received).toHaveLength(4);
    } finally {
      await hook.close();
    }
  });

  it('is managed from the CLI over the data directory and over the API', async () => {
    const address = await app.listen({ port: 0, host: '127.0.0.1' });
    process.env.PORTBANDIT_ADMIN_TOKEN = t.admin;
    try {
      expect(
        (
          await runCli([
            'alert',
            'add',
            'rdp',
            '--query',
            'kind:service-new port:3389',
            '--url',
            'http://127.0.0.1:9/rdp',
            '--data',
            data.dir,
          ])
        ).code,
      ).toBe(0);
      expect(
        (await runCli(['alert', 'add', 'web', '--query', 'port:80', '--url', 'http://127.0.0.1:9/web', '--server', address])).code,
      ).toBe(0);
      const listed = await runCli(['alert', 'list', '--json', '--server', address]);
      expect((JSON.parse(listed.out) as { rules: Array<{ name: string }> }).rules.map((r) => r.name)).toEqual(['rdp', 'web']);
      expect((await runCli(['alert', 'list', '--data', data.dir])).out).toMatch(
        /^rdp\tkind:service-new port:3389\thttp:\/\/127\.0\.0\.1:9\/rdp\t/,
      );
      const bad = await runCli(['alert', 'add', 'x', '--query', 'kind:nope', '--url', 'http://127.0.0.1:9/', '--server', address]);
      expect(bad.code).toBe(2);
      expect(bad.err).toMatch(/'nope' is not an event kind.*PB_ERR_QUERY/);
      expect((await runCli(['alert', 'rm', 'rdp', '--server', address])).code).toBe(0);
      expect((await runCli(['alert', 'rm', 'rdp', '--data', data.dir])).err).toMatch(/no alert rule "rdp".*PB_ERR_NOT_FOUND/);
      expect(JSON.parse((await runCli(['alert', 'dead', '--json', '--data', data.dir])).out)).toEqual({ deadLetters: [] });
    } finally {
      delete process.env.PORTBANDIT_ADMIN_TOKEN;
    }
  });
});
