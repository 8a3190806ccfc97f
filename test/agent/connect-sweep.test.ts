import { createServer, type Server } from 'node:net';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { AllowList, runConnectSweep, scanBatch, type ScanConfig } from '../../agent/index.js';
import type { WorkItem } from '../../src/protocol/protocol.js';

const loopback = AllowList.parse(['127.0.0.1/32']);
const servers: Server[] = [];
const open: number[] = [];

async function listen(): Promise<number> {
  const server = createServer((socket) => {
    // The sweep resets connections as soon as they open.
    socket.on('error', () => socket.destroy());
    socket.end('SSH-2.0-OpenSSH_9.2p1\r\n');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  servers.push(server);
  return (server.address() as { port: number }).port;
}

/** A port that was just free (bound then released): connecting to it is refused. */
async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const port = (s.address() as { port: number }).port;
  await new Promise((resolve) => s.close(resolve));
  return port;
}

beforeAll(async () => {
  for (let i = 0; i < 5; i++) open.push(await listen());
  open.sort((a, b) => a - b);
});

afterAll(async () => {
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
});

describe('the TCP connect sweep on loopback', () => {
  test('finds exactly the listening ports among closed ones, with bounded concurrency', async () => {
    const closed = [];
    for (let i = 0; i < 20; i++) closed.push(await closedPort());
    const ports = [...new Set([...open, ...closed])].sort((a, b) => a - b);
    const r = await runConnectSweep({ targets: ['127.0.0.1'], ports, allow: loopback, concurrency: 3, timeoutMs: 1000, retries: 1 });
    expect(r.open.get('127.0.0.1')).toEqual(open);
    expect(r.answered.has('127.0.0.1')).toBe(true);
    // Refusals are answers: no port is retried.
    expect(r.attempts).toBe(ports.length);
  });

  test('scanBatch without nmap reports the open ports without service names, per item', async () => {
    const config: ScanConfig = {
      allow: loopback,
      scriptsAllow: new Set(),
      preflight: 'connect',
      tools: { nmap: null, masscan: null, rawSockets: false },
      masscan: { rate: 1000, retries: 0, waitSeconds: 0 },
      connect: { concurrency: 8, timeoutMs: 1000, retries: 0 },
      pseudoServiceThreshold: 3,
      log: () => {},
    };
    const base = { protocol: 1, tags: [], round: 0, cycle: 0, reason: 'cycle', issuedAt: 0, deadline: Date.now() + 60_000 } as const;
    const scan = { versionDetection: true, scripts: [], hostTimeoutSeconds: 30, scriptTimeoutSeconds: 10, preflight: 'connect' } as const;
    const items: WorkItem[] = [
      { ...base, leaseId: 'a', ip: '127.0.0.1', ports: open.slice(0, 2), scan },
      { ...base, leaseId: 'b', ip: '127.0.0.1', ports: open, scan },
    ];
    const out = await scanBatch(items, config);
    const a = out.submissions.find((s) => s.leaseId === 'a')!;
    const b = out.submissions.find((s) => s.leaseId === 'b')!;
    expect(a.preflight).toBe('connect');
    expect(a.ports.map((p) => p.port)).toEqual(open.slice(0, 2));
    expect(a.ports.every((p) => p.service === undefined && p.state === 'open')).toBe(true);
    expect(a.host).toMatchObject({ serviceDetection: expect.stringContaining('nmap not installed') });
    // Five open ports > threshold 3: a pseudo-service host, flagged, no nmap.
    expect(b.host).toMatchObject({ pseudoServices: true, preflightOpen: 5 });
    expect(b.ports).toHaveLength(5);
  });
});
