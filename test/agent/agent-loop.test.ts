import { createServer, type Server } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, test, vi } from 'vitest';
import { Agent, AllowList, detectScannerTools, type ScanConfig } from '../../agent/index.js';
import { addScope, bearer, openApp, tempDataDir, tokens } from '../coordinator/helpers.js';

const servers: Server[] = [];
const tools = await detectScannerTools();

async function listen(banner: string): Promise<number> {
  const server = createServer((socket) => {
    socket.on('error', () => socket.destroy());
    socket.write(banner);
    socket.setTimeout(5000, () => socket.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  servers.push(server);
  return (server.address() as { port: number }).port;
}

function scanConfig(allow: string[]): Omit<ScanConfig, 'signal'> {
  return {
    allow: AllowList.parse(allow),
    scriptsAllow: new Set(),
    preflight: 'connect',
    tools: { ...tools, masscan: null },
    masscan: { rate: 1000, retries: 0, waitSeconds: 0 },
    connect: { concurrency: 16, timeoutMs: 1000, retries: 0 },
    pseudoServiceThreshold: 100,
    log: () => {},
  };
}

describe('the agent against a real coordinator over HTTP on loopback', () => {
  const data = tempDataDir();
  let app: FastifyInstance;
  let url: string;
  let admin: string;
  let agentToken: string;
  let sshPort: number;
  let closed: number;

  beforeAll(async () => {
    sshPort = await listen('SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n');
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    closed = (probe.address() as { port: number }).port;
    await new Promise((resolve) => probe.close(resolve));
    app = await openApp(data.dir, Date.now);
    url = await app.listen({ host: '127.0.0.1', port: 0 });
    const t = await tokens(app, 2);
    admin = t.admin;
    agentToken = t.agents[0]!;
    await addScope(app, admin, [{ range: '127.0.0.1/32', tags: ['loop'] }]);
    const res = await app.inject({
      method: 'PUT',
      url: '/api/v1/admin/policies/_default',
      headers: bearer(admin),
      payload: {
        strategy: 'fixed',
        params: { ports: [sshPort, closed] },
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

  test('an agent that may not scan loopback refuses the work and submits nothing', async () => {
    const agent = new Agent({ server: url, token: agentToken, concurrency: 1, once: true, scan: scanConfig(['198.18.0.0/15']) });
    const stats = await agent.run();
    expect(stats).toMatchObject({ refused: 1, submitted: 0 });
    const host = await app.inject({ method: 'GET', url: '/api/v1/hosts/127.0.0.1', headers: bearer(admin) });
    expect(host.statusCode).toBe(404);
  });

  test('pulls work, sweeps, runs nmap on the open port and the store holds the result', async () => {
    // The refused lease above still holds the host (a rescan of an address being scanned is
    // dropped): end it, as its expiry would, and a manual rescan queues the host again.
    for (const l of await app.coordinator.store.listLeases({ ip: '127.0.0.1' })) await app.coordinator.store.completeLease(l.id);
    await app.inject({ method: 'POST', url: '/api/v1/admin/rescan', headers: bearer(admin), payload: { ips: ['127.0.0.1'] } });
    const agent = new Agent({ server: url, token: agentToken, concurrency: 1, once: true, scan: scanConfig(['127.0.0.1/32']) });
    const stats = await agent.run();
    expect(stats).toMatchObject({ submitted: 1, rejected: 0, refused: 0 });
    const res = await app.inject({ method: 'GET', url: '/api/v1/hosts/127.0.0.1', headers: bearer(admin) });
    expect(res.statusCode, res.body).toBe(200);
    const scan = res.json() as { preflight: string; ports: Array<{ port: number; state: string; service?: string; product?: string }> };
    expect(scan.preflight).toBe('connect');
    expect(scan.ports.filter((p) => p.state === 'open').map((p) => p.port)).toEqual([sshPort]);
    if (tools.nmap) expect(scan.ports[0]).toMatchObject({ service: 'ssh', product: 'OpenSSH' });
    else process.stderr.write('agent-loop: nmap not installed; checked ports only\n');
  }, 120_000);

  test('backs off while the coordinator is unreachable and stops cleanly', async () => {
    // Fake timers: the agent's back-off sleeps (node:timers/promises) advance only when the test
    // says so, so the sequence is exact however slow the machine (the leases themselves are real
    // HTTP attempts against a closed port).
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    try {
      const logs: string[] = [];
      const agent = new Agent({
        server: 'http://127.0.0.1:9', // discard port: nothing listens there
        token: agentToken,
        concurrency: 1,
        once: false,
        scan: { ...scanConfig(['127.0.0.1/32']), log: (l) => logs.push(l) },
        backoff: { initialMs: 50, maxMs: 400 },
      });
      const retries = () =>
        logs
          .map((l) => /retrying in (\d+) ms/.exec(l)?.[1])
          .filter(Boolean)
          .map(Number);
      const running = agent.run();
      for (let n = 1; n <= 6; n++) {
        // Wait (real I/O, no timer) for the n-th refused lease, then let exactly its back-off pass.
        while (retries().length < n) await new Promise((resolve) => setImmediate(resolve));
        expect(retries()).toHaveLength(n);
        await vi.advanceTimersByTimeAsync(retries()[n - 1]!);
      }
      agent.stop();
      const stats = await running;
      const delays = retries();
      expect(delays.slice(0, 6)).toEqual([50, 100, 200, 400, 400, 400]);
      // Failed lease requests are retries, not lost work.
      expect(stats.retries).toBe(delays.length);
      expect(stats.errors).toBe(0);
      expect(logs.at(-1)).toMatch(/stopped/);
    } finally {
      vi.useRealTimers();
    }
  });
});
