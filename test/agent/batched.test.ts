import { createServer, type Server } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { Agent, AllowList, CoordinatorClient, ResultBatcher, type ScanConfig } from '../../agent/index.js';
import type { WorkItem } from '../../src/coordinator/protocol.js';
import { addScope, bearer, openApp, resultFor, tempDataDir, tokens } from '../coordinator/helpers.js';

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
      if (!older) return;
      if (req.url.includes('max=')) {
        return reply
          .status(400)
          .send({ statusCode: 400, code: 'PB_ERR_INVALID_ARGUMENT', message: 'querystring must NOT have additional properties (request querystring)', error: 'Bad Request' });
      }
      if (req.url === '/api/v1/agent/results/batch') return reply.status(404).send({ message: 'Route POST:/api/v1/agent/results/batch not found', error: 'Not Found', statusCode: 404 });
    });
    url = await app.listen({ host: '127.0.0.1', port: 0 });
    const t = await tokens(app, 3);
    admin = t.admin;
    agentTokens = t.agents;
    const res = await app.inject({
      method: 'PUT',
      url: '/api/v1/admin/policies/_default',
      headers: bearer(admin),
      payload: { strategy: 'fixed', params: { ports: [open, closed] }, budget: 2, scan: { preflight: 'connect', versionDetection: true, scripts: [], hostTimeoutSeconds: 60 } },
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
    expect(seen.filter((r) => r.startsWith('GET'))).toEqual(['GET /api/v1/agent/work?max=4', ...Array<string>(4).fill('GET /api/v1/agent/work')]);
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
  }, 30_000);
});
