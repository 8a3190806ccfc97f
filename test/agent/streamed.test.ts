import { createServer, type Server } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { Agent, AllowList, detectScannerTools, type ScanConfig } from '../../agent/index.js';
import type { ScanDocument } from '../../src/store/types.js';
import { addScope, bearer, openApp, tempDataDir, tokens } from '../coordinator/helpers.js';

const tools = await detectScannerTools();
const servers: Server[] = [];

/** A TCP service on `host`: one that greets like sshd, or one that accepts and stays silent. */
async function listen(host: string, banner: string | null, port = 0): Promise<number> {
  const server = createServer((socket) => {
    socket.on('error', () => socket.destroy());
    if (banner !== null) socket.write(banner);
    socket.setTimeout(60_000, () => socket.destroy());
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, resolve);
  });
  servers.push(server);
  return (server.address() as { port: number }).port;
}

function scanConfig(log: (line: string) => void): Omit<ScanConfig, 'signal'> {
  return {
    allow: AllowList.parse(['127.0.0.0/8']),
    scriptsAllow: new Set(),
    preflight: 'connect',
    tools: { ...tools, masscan: null },
    masscan: { rate: 1000, retries: 0, waitSeconds: 0 },
    connect: { concurrency: 16, timeoutMs: 1000, retries: 0 },
    pseudoServiceThreshold: 100,
    log,
  };
}

describe.skipIf(!tools.nmap)('the streamed agent (real nmap on loopback)', () => {
  const data = tempDataDir();
  let app: FastifyInstance;
  let url: string;
  let admin: string;
  let agentToken: string;

  beforeAll(async () => {
    // One port number on two loopback hosts: a talkative service on .1, a silent one on .2.
    const port = await listen('127.0.0.1', 'SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n');
    await listen('127.0.0.2', null, port);
    app = await openApp(data.dir, Date.now);
    url = await app.listen({ host: '127.0.0.1', port: 0 });
    const t = await tokens(app);
    admin = t.admin;
    agentToken = t.agents[0]!;
    await addScope(app, admin, [{ range: '127.0.0.1-127.0.0.2' }]);
    const res = await app.inject({
      method: 'PUT',
      url: '/api/v1/admin/policies/_default',
      headers: bearer(admin),
      payload: {
        strategy: 'fixed',
        params: { ports: [port] },
        budget: 1,
        periodSeconds: null,
        scan: { preflight: 'connect', versionDetection: true, scripts: [], hostTimeoutSeconds: 6, versionIntensity: 9 },
      },
    });
    expect(res.statusCode, res.body).toBe(200);
  }, 60_000);

  afterAll(async () => {
    await app?.close();
    await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
    data.cleanup();
  });

  const latest = async (ip: string): Promise<ScanDocument | undefined> => {
    const res = await app.inject({ method: 'GET', url: `/api/v1/hosts/${ip}`, headers: bearer(admin) });
    return res.statusCode === 200 ? (res.json() as ScanDocument) : undefined;
  };

  test('submits each host the moment it is done, and a host timeout keeps the open port open (partial, not closed)', async () => {
    const logs: string[] = [];
    const agent = new Agent({ server: url, token: agentToken, concurrency: 2, once: true, scan: scanConfig((l) => logs.push(l)) });
    const running = agent.run();
    // The talkative host's result is stored while the silent one is still in nmap.
    let fast: ScanDocument | undefined;
    for (let waited = 0; !fast && waited < 30_000; waited += 100) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      fast = await latest('127.0.0.1');
    }
    expect(fast, logs.join('\n')).toBeDefined();
    expect(await latest('127.0.0.2')).toBeUndefined();
    expect(fast!.ports.filter((p) => p.state === 'open')).toMatchObject([{ service: 'ssh', product: 'OpenSSH' }]);
    expect(fast!.incomplete).toBeUndefined();

    const stats = await running;
    expect(stats).toMatchObject({ submitted: 2, rejected: 0 });
    const slow = (await latest('127.0.0.2'))!;
    expect(slow.incomplete).toMatch(/nmap gave up on port\(s\) \d+ at the 6 s timeout/);
    expect(slow.ports.filter((p) => p.state === 'open').map((p) => p.port)).toEqual([fast!.ports[0]!.port]);
    expect(slow.knownOpen).toEqual([fast!.ports[0]!.port]);
    expect(slow.finishedAt - fast!.finishedAt).toBeGreaterThan(3000);
    expect(slow.timings).toMatchObject({ nmap: expect.any(Number), preflight: expect.any(Number), wall: expect.any(Number) });
    // The port -sV got no answer on is marked silent; the one it named is not.
    expect(slow.ports.find((p) => p.state === 'open')?.silent).toBe(true);
    expect(fast!.ports.find((p) => p.state === 'open')?.silent).toBeUndefined();
  }, 90_000);

  test('the next cycle skips -sV on the port silent at the last visit: open and silent at once, not partial', async () => {
    const logs: string[] = [];
    const before = (await latest('127.0.0.2'))!;
    const agent = new Agent({ server: url, token: agentToken, concurrency: 2, once: true, scan: scanConfig((l) => logs.push(l)) });
    expect(await agent.run()).toMatchObject({ submitted: 2, rejected: 0 });
    const slow = (await latest('127.0.0.2'))!;
    const fast = (await latest('127.0.0.1'))!;
    expect(slow.cycle, logs.join('\n')).toBe(before.cycle + 1);
    expect(slow.incomplete).toBeUndefined();
    expect(slow.ports.filter((p) => p.state === 'open')).toEqual([
      { port: before.ports[0]!.port, protocol: 'tcp', state: 'open', cpes: [], scripts: [], silent: true },
    ]);
    // No nmap run waited for the 6 s time-out; the talkative host was looked at as before.
    expect(slow.finishedAt - slow.startedAt).toBeLessThan(4000);
    expect(fast.cycle).toBe(slow.cycle);
    expect(fast.ports.filter((p) => p.state === 'open')).toMatchObject([{ service: 'ssh', product: 'OpenSSH' }]);
  }, 90_000);
});
