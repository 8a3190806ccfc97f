import { createServer as createHttpServer, type IncomingMessage } from 'node:http';
import { createServer, type Server } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { Agent, AllowList, CoordinatorClient, ResultBatcher, type ScanConfig } from '../../agent/index.js';
import type { WorkItem } from '../../src/protocol/protocol.js';
import { addScope, bearer, openApp, resultFor, tempDataDir, tokens } from '../coordinator/helpers.js';
import { freePort } from '../helpers/net.js';
import { workItem } from '../helpers/work-item.js';

const servers: Server[] = [];

async function listen(): Promise<number> {
  const server = createServer((socket) => {
    socket.on('error', () => socket.destroy());
    socket.end('SSH-2.0-OpenSSH_9.2p1\r\n');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  servers.push(server);
  return (server.address() as { port: number }).port;
}

/** No nmap, no masscan: the connect preflight alone, on loopback. */
function scanConfig(log: (line: string) => void): Omit<ScanConfig, 'signal'> {
  return {
    allow: AllowList.parse(['127.0.0.0/8']),
    scriptsAllow: new Set(),
    preflight: 'connect',
    tools: { nmap: null, masscan: null, rawSockets: false },
    masscan: { rate: 1000, retries: 0, waitSeconds: 0 },
    connect: { concurrency: 16, timeoutMs: 1000, retries: 0 },
    pseudoServiceThreshold: 100,
    log,
  };
}

describe('the agent leases and submits in batches against a real coordinator on loopback', () => {
  const data = tempDataDir();
  let app: FastifyInstance;
  let url: string;
  let admin: string;
  let agentTokens: string[];
  let open: number;
  /** Requests as the coordinator saw them ("GET /api/v1/agent/work?max=12", ...). */
  const seen: string[] = [];
  /** While true, the coordinator answers as one older than batches does (captured from e89419b). */
  let older = false;
  /** While above 0, agent requests are answered 503 (a coordinator restarting or overloaded), one fewer each time. */
  let unavailable = 0;
  /** While above 0, the next batch answer keeps this many items and says `more`, as one cut by the ports cap does. */
  let cutNextAnswer = 0;

  beforeAll(async () => {
    open = await listen();
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const closed = (probe.address() as { port: number }).port;
    await new Promise((resolve) => probe.close(resolve));
    app = await openApp(data.dir, Date.now);
    app.addHook('onRequest', async (req, reply) => {
      if (!req.url.startsWith('/api/v1/agent/')) return;
      seen.push(`${req.method} ${req.url.replace(/version=[^&]*&?/, '').replace(/\?$/, '')}`);
      if (unavailable > 0 && req.method === 'POST') {
        unavailable--;
        return reply.status(503).send({ statusCode: 503, code: 'PB_ERR_STORE_BUSY', message: 'restarting', error: 'Service Unavailable' });
      }
      if (!older) return;
      if (req.url.includes('max=')) {
        return reply.status(400).send({
          statusCode: 400,
          code: 'PB_ERR_SCHEMA',
          message: 'querystring must NOT have additional properties (request querystring)',
          error: 'Bad Request',
        });
      }
      if (req.url === '/api/v1/agent/results/batch')
        return reply.status(404).send({ message: 'Route POST:/api/v1/agent/results/batch not found', error: 'Not Found', statusCode: 404 });
    });
    app.addHook('preSerialization', async (req, _reply, payload: { items?: WorkItem[] }) => {
      if (cutNextAnswer === 0 || !req.url.startsWith('/api/v1/agent/work?') || !payload?.items) return payload;
      const keep = cutNextAnswer;
      cutNextAnswer = 0;
      return { ...payload, items: payload.items.slice(0, keep), more: true };
    });
    url = await app.listen({ host: '127.0.0.1', port: 0 });
    const t = await tokens(app, 3);
    admin = t.admin;
    agentTokens = t.agents;
    const res = await app.inject({
      method: 'PUT',
      url: '/api/v1/admin/policies/_default',
      headers: bearer(admin),
      payload: {
        strategy: 'fixed',
        params: { ports: [open, closed] },
        budget: 2,
        scan: { preflight: 'connect', versionDetection: true, scripts: [], hostTimeoutSeconds: 60 },
      },
    });
    expect(res.statusCode, res.body).toBe(200);
  }, 60_000);

  afterAll(async () => {
    await app?.close();
    await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
    data.cleanup();
  });

  const openPorts = async (ip: string): Promise<number[] | undefined> => {
    const res = await app.inject({ method: 'GET', url: `/api/v1/hosts/${ip}`, headers: bearer(admin) });
    if (res.statusCode !== 200) return undefined;
    return (res.json() as { ports: Array<{ port: number; state: string }> }).ports.filter((p) => p.state === 'open').map((p) => p.port);
  };

  test('one request leases the free slots, results go through the batch route, every host is stored', async () => {
    // Arrange: twelve loopback addresses; only 127.0.0.1 listens.
    await addScope(app, admin, [{ range: '127.0.0.1-127.0.0.12' }]);
    seen.length = 0;
    const logs: string[] = [];
    const agent = new Agent({ server: url, token: agentTokens[0]!, concurrency: 12, once: true, scan: scanConfig((l) => logs.push(l)) });

    // Act
    const stats = await agent.run();

    // Assert
    expect(stats, logs.join('\n')).toMatchObject({ batches: 1, submitted: 12, rejected: 0, refused: 0, errors: 0 });
    expect(seen.filter((r) => r.startsWith('GET'))).toEqual(['GET /api/v1/agent/work?max=12']);
    const posts = seen.filter((r) => r.startsWith('POST'));
    expect(posts.length).toBeGreaterThan(0);
    expect(posts.length).toBeLessThan(12);
    expect(new Set(posts)).toEqual(new Set(['POST /api/v1/agent/results/batch']));
    expect(await openPorts('127.0.0.1')).toEqual([open]);
    for (let i = 2; i <= 12; i++) expect(await openPorts(`127.0.0.${i}`), `127.0.0.${i}`).toEqual([]);
  }, 60_000);

  test('results refused while the coordinator is away are retried: counted as retries, not errors, and every host is stored', async () => {
    await app.coordinator.restartCycle();
    const started = Date.now();
    unavailable = 3;
    const logs: string[] = [];
    const agent = new Agent({
      server: url,
      token: agentTokens[1]!,
      concurrency: 4,
      once: true,
      scan: scanConfig((l) => logs.push(l)),
      backoff: { initialMs: 10, maxMs: 40 },
    });

    const stats = await agent.run();

    expect(unavailable).toBe(0);
    expect(stats, logs.join('\n')).toMatchObject({ submitted: 4, rejected: 0, refused: 0, errors: 0 });
    expect(stats.retries).toBeGreaterThanOrEqual(3);
    expect(logs.at(-1)).toMatch(/stopped \(4 results submitted, 0 refused, 0 rejected, \d+ coordinator requests retried\)/);
    // Results refused together are logged together: one line per request (and back-off), naming each result once.
    const failedLines = logs.filter((l) => /agent: submitting .* failed/.test(l));
    const named = failedLines.map((l) => Number(/submitting (\d+) results \(/.exec(l)?.[1] ?? 1));
    expect(
      named.reduce((a, b) => a + b, 0),
      failedLines.join('\n'),
    ).toBe(stats.retries);
    // Three requests failed: more retries than that means a request carried several results, logged in one line.
    if (stats.retries > 3) expect(failedLines.length, failedLines.join('\n')).toBeLessThan(stats.retries);
    const stored = logs.map((l) => /agent: (127\.0\.0\.\d+): \d+ open port/.exec(l)?.[1]).filter((ip) => ip !== undefined);
    expect(stored).toHaveLength(4);
    for (const ip of stored) {
      const res = await app.inject({ method: 'GET', url: `/api/v1/hosts/${ip}`, headers: bearer(admin) });
      expect((res.json() as { finishedAt: number }).finishedAt, ip).toBeGreaterThanOrEqual(started);
    }
  }, 60_000);

  test('given two coordinators, an agent whose first does not answer leases from and submits to the second', async () => {
    await app.coordinator.restartCycle();
    const dead = `http://127.0.0.1:${await freePort()}`;
    const logs: string[] = [];
    const agent = new Agent({
      server: [dead, url],
      token: agentTokens[1]!,
      concurrency: 4,
      once: true,
      scan: scanConfig((l) => logs.push(l)),
    });
    const stats = await agent.run();
    expect(stats, logs.join('\n')).toMatchObject({ submitted: 4, rejected: 0, refused: 0, errors: 0, retries: 0 });
    expect(logs.filter((l) => l.includes('did not answer'))).toEqual([
      expect.stringMatching(
        new RegExp(`^agent: ${dead} did not answer \\(GET ${dead}/api/v1/agent/work.*coordinator unreachable.*\\); using ${url}$`),
      ),
    ]);
  }, 60_000);

  test('an answer that says more (cut short by the ports cap) is followed at once by a request for the rest', async () => {
    // Arrange: eight other addresses (a new cycle); the first answer keeps 2 of the 4 items asked for and says more.
    await app.coordinator.replaceScope('scope', [{ range: '127.0.0.17-127.0.0.24', tags: [] }]);
    await app.coordinator.restartCycle();
    seen.length = 0;
    cutNextAnswer = 2;
    const logs: string[] = [];
    const agent = new Agent({ server: url, token: agentTokens[1]!, concurrency: 4, once: true, scan: scanConfig((l) => logs.push(l)) });

    // Act
    const stats = await agent.run();

    // Assert: one burst of four, leased by two requests (the second for what the first left).
    expect(stats, logs.join('\n')).toMatchObject({ batches: 1, submitted: 4, rejected: 0, errors: 0 });
    expect(seen.filter((r) => r.startsWith('GET'))).toEqual(['GET /api/v1/agent/work?max=4', 'GET /api/v1/agent/work?max=2']);
  }, 60_000);

  test('against an older coordinator (max refused, no batch route) it falls back to one item per request', async () => {
    // Arrange: four other addresses (a new cycle), and a coordinator that answers as one without batches.
    await app.coordinator.replaceScope('scope', [{ range: '127.0.0.13-127.0.0.16', tags: [] }]);
    await app.coordinator.restartCycle();
    seen.length = 0;
    older = true;
    const logs: string[] = [];
    const agent = new Agent({ server: url, token: agentTokens[1]!, concurrency: 4, once: true, scan: scanConfig((l) => logs.push(l)) });

    // Act
    const stats = await agent.run().finally(() => (older = false));

    // Assert
    expect(stats, logs.join('\n')).toMatchObject({ submitted: 4, rejected: 0, errors: 0 });
    expect(seen.filter((r) => r.startsWith('GET'))).toEqual([
      'GET /api/v1/agent/work?max=4',
      ...Array<string>(4).fill('GET /api/v1/agent/work'),
    ]);
    const posts = seen.filter((r) => r.startsWith('POST'));
    expect(posts.filter((r) => r.endsWith('/batch')).length).toBeGreaterThanOrEqual(1);
    expect(posts.filter((r) => r === 'POST /api/v1/agent/results')).toHaveLength(4);
    expect(logs.some((l) => l.includes('leasing one item per request'))).toBe(true);
    expect(logs.some((l) => l.includes('no batch route'))).toBe(true);
    for (let i = 13; i <= 16; i++) expect(await openPorts(`127.0.0.${i}`), `127.0.0.${i}`).toEqual([]);
  }, 60_000);

  test('the batcher holds a lone result at most its flush interval and sends sixteen at once', async () => {
    // Arrange: 17 leases of a /27 for a third agent.
    await app.coordinator.replaceScope('scope', [{ range: '127.0.1.0/27', tags: [] }]);
    await app.coordinator.restartCycle();
    const client = new CoordinatorClient(url, agentTokens[2]!);
    const items = (await client.getWork(17)).items as WorkItem[];
    expect(items).toHaveLength(17);
    const batcher = new ResultBatcher({ client, flushMs: 100, flushAt: 16, log: () => {} });
    // A flush interval no test would wait for: sixteen results must go at once without it.
    const eager = new ResultBatcher({ client, flushMs: 600_000, flushAt: 16, log: () => {} });
    seen.length = 0;

    // Act: one result alone, then sixteen together.
    const t0 = performance.now();
    const lone = await batcher.add(resultFor(items[0]!, [], Date.now()));
    const loneMs = performance.now() - t0;
    const many = await Promise.all(items.slice(1).map((w) => eager.add(resultFor(w, [], Date.now()))));

    // Assert
    expect(lone).toEqual({ kind: 'stored', duplicate: false, followUp: false });
    expect(loneMs).toBeGreaterThanOrEqual(90);
    expect(loneMs).toBeLessThan(2000);
    expect(many.every((a) => a.kind === 'stored')).toBe(true);
    expect(seen).toEqual(['POST /api/v1/agent/results/batch', 'POST /api/v1/agent/results/batch']);
  });
});

describe('the agent trusts nothing in a batch answer', () => {
  test('a batch with malformed items and more than asked: the bad ones refused alone, the extra ignored, unreadable batch answers sent again one by one', async () => {
    // Arrange: a coordinator that answers `max=3` with five items (two malformed), and a batch
    // route whose answer is not a list.
    const item = (leaseId: string, ip: string): WorkItem =>
      workItem({ leaseId, ip, ports: [9], scan: { versionDetection: false, preflight: 'connect' } });
    const given = [
      item('lease_a', '127.0.0.1'),
      { ...item('lease_b', '127.0.0.2'), ports: '1-65535 -oN x' },
      'not an item',
      item('lease_extra1', '127.0.0.3'),
      item('lease_extra2', '127.0.0.4'),
    ];
    const asked: string[] = [];
    const single: Array<{ leaseId: string }> = [];
    const refused: string[] = [];
    const read = async (req: IncomingMessage) => {
      const chunks: Buffer[] = [];
      for await (const c of req) chunks.push(c as Buffer);
      return JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>;
    };
    const server = createHttpServer((req, res) => {
      void (async (): Promise<unknown> => {
        const send = (value: unknown) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(value));
        if (req.method === 'GET') {
          asked.push(req.url!);
          return send(asked.length === 1 ? { work: given[0], items: given } : { work: null, items: [], retryAfterMs: 1000 });
        }
        const body = await read(req);
        if (req.url === '/api/v1/agent/results/batch') return send({ results: 'all good' });
        if (req.url === '/api/v1/agent/results') {
          single.push(body as { leaseId: string });
          return send({ scanId: String(body.leaseId), accepted: true, duplicate: false, followUp: false, events: 0 });
        }
        if (req.url === '/api/v1/agent/refused') {
          refused.push(String(body.leaseId));
          return send({ recorded: true });
        }
        return res.writeHead(404).end('{}');
      })();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    const logs: string[] = [];

    try {
      // Act
      const agent = new Agent({ server: url, token: 'pba_test', concurrency: 3, once: true, scan: scanConfig((l) => logs.push(l)) });
      const stats = await agent.run();

      // Assert: three taken (one scanned and submitted, two refused), the two extra never touched.
      expect(asked).toEqual([expect.stringMatching(/max=3$/)]);
      expect(stats, logs.join('\n')).toMatchObject({ batches: 1, submitted: 1, refused: 2, rejected: 0, errors: 0 });
      expect(single.map((r) => r.leaseId)).toEqual(['lease_a']);
      expect(refused).toEqual(['lease_b']);
      expect(logs.join('\n')).not.toMatch(/lease_extra|127\.0\.0\.[34]/);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
