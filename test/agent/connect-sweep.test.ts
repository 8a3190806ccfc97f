import { createServer, type Server } from 'node:net';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import {
  AllowList,
  ProbeTimer,
  preflightDeadline,
  probeTimerFor,
  runConnectSweep,
  scanBatch,
  type ScanConfig,
  TIMING_PROBE_AFTER_MS,
} from '../../agent/index.js';
import { PortRanges } from '../../src/core/index.js';
import type { WorkItem } from '../../src/protocol/protocol.js';
import { workItem } from '../helpers/work-item.js';

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

/** An agent without nmap or masscan: the connect sweep on loopback is its only scanner. */
function connectOnly(connect: { timeoutMs: number; retries: number }, pseudoServiceThreshold: number): ScanConfig {
  return {
    allow: loopback,
    scriptsAllow: new Set(),
    preflight: 'connect',
    tools: { nmap: null, masscan: null, rawSockets: false },
    masscan: { rate: 1000, retries: 0, waitSeconds: 0 },
    connect: { concurrency: 8, ...connect },
    pseudoServiceThreshold,
    log: () => {},
  };
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
    const config = connectOnly({ timeoutMs: 1000, retries: 0 }, 3);
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

describe('a preflight bounded by the lease deadline', () => {
  test('no attempt starts that could not finish by the deadline; those ports come back unprobed', async () => {
    const ports = [...open, await closedPort()].sort((a, b) => a - b);
    // Every attempt (1 s time-out) would end after the deadline (0.5 s away): none is sent.
    const r = await runConnectSweep({ targets: ['127.0.0.1'], ports, allow: loopback, timeoutMs: 1000, deadline: Date.now() + 500 });
    expect(r.attempts).toBe(0);
    expect(r.open.size).toBe(0);
    expect(r.unprobed.get('127.0.0.1')).toEqual(ports);
    // A deadline far away changes nothing.
    const far = await runConnectSweep({ targets: ['127.0.0.1'], ports, allow: loopback, timeoutMs: 1000, deadline: Date.now() + 60_000 });
    expect(far.open.get('127.0.0.1')).toEqual(open);
    expect(far.unprobed.size).toBe(0);
  });

  test('a deadline that is not a number is refused before any socket', async () => {
    await expect(runConnectSweep({ targets: ['127.0.0.1'], ports: [9], allow: loopback, deadline: Number.NaN })).rejects.toMatchObject({
      code: 'PB_ERR_SCAN_OPTION',
      where: 'connect-sweep deadline',
    });
  });

  test("preflightDeadline keeps nmap's time-out and the submission before the earliest lease deadline, or half of what is left", () => {
    const scan = { hostTimeoutSeconds: 30 } as WorkItem['scan'];
    const now = 1_000_000;
    expect(
      preflightDeadline(
        [
          { deadline: now + 600_000, scan },
          { deadline: now + 300_000, scan },
        ],
        now,
      ),
    ).toBe(now + 300_000 - 40_000);
    expect(preflightDeadline([{ deadline: now + 20_000, scan }], now)).toBe(now + 10_000);
    expect(preflightDeadline([], now)).toBe(Infinity);
  });

  test('scanBatch reports the ports its deadline left unprobed as unknown, never closed, and the host not down', async () => {
    const config = connectOnly({ timeoutMs: 5000, retries: 1 }, 10);
    // The lease ends in 4 s: the preflight gets until 2 s from now, less than one 5 s attempt.
    const item = workItem({ leaseId: 'short', ports: open, cycle: 0, deadline: Date.now() + 4000, scan: { preflight: 'connect' } });
    const out = await scanBatch([item], config);
    const s = out.submissions[0]!;
    expect(s.status).toBe('up');
    expect(s.ports).toEqual([]);
    expect(s.unknownPorts).toBe(PortRanges.fromPorts(open).toString());
    expect(s.incomplete).toMatch(/lease deadline with 5 of 5 port\(s\) not probed \(unknown, not closed\)/);
  });
});

describe('per-probe timeouts from measured round trips (ProbeTimer)', () => {
  test('the longest timeout until an answer is measured; then the round trip plus four deviations, at least the floor', () => {
    const timer = new ProbeTimer(1500, 100);
    expect(timer.timeout('198.18.0.1', 0)).toBe(1500);
    // A LAN answer in ~1 ms: the floor.
    timer.sample('198.18.0.1', 1);
    expect(timer.timeout('198.18.0.1', 0)).toBe(100);
    // A retry waits twice as long (and never past the longest).
    expect(timer.timeout('198.18.0.1', 1)).toBe(200);
    expect(timer.timeout('198.18.0.1', 5)).toBe(1500);
    // A far target: 200 ms answers, its own estimate (first sample: 200 + 4 x 100).
    timer.sample('198.18.0.2', 200);
    expect(timer.timeout('198.18.0.2', 0)).toBe(600);
    // A target that has not answered yet borrows the sweep's estimate over every answer.
    const sweepWide = timer.timeout('198.18.0.3', 0);
    expect(sweepWide).toBeGreaterThan(100);
    expect(sweepWide).toBeLessThanOrEqual(1500);
    // Steady answers narrow the deviation: the estimate settles near the round trip.
    for (let i = 0; i < 50; i++) timer.sample('198.18.0.2', 200);
    expect(timer.timeout('198.18.0.2', 0)).toBeGreaterThanOrEqual(200);
    expect(timer.timeout('198.18.0.2', 0)).toBeLessThan(260);
  });

  test('a round trip that falls brings the timeout down at once (it does not rise first); a rising one raises it', () => {
    const timer = new ProbeTimer(1500, 10);
    // Five answers in 200 ms (measured in a busy moment), then the path's 2 ms.
    for (let i = 0; i < 5; i++) timer.sample('198.18.0.1', 200);
    let previous = timer.timeout('198.18.0.1', 0);
    for (let i = 0; i < 40; i++) {
      timer.sample('198.18.0.1', 2);
      const t = timer.timeout('198.18.0.1', 0);
      expect(t).toBeLessThanOrEqual(previous);
      previous = t;
    }
    expect(previous).toBeLessThan(60);
    // And back up: answers in 300 ms lengthen it past them within a few samples.
    for (let i = 0; i < 3; i++) timer.sample('198.18.0.1', 300);
    expect(timer.timeout('198.18.0.1', 0)).toBeGreaterThan(300);
  });

  test("an answer's time less the event loop's delay (how late the probes' timers fired lately)", () => {
    const timer = new ProbeTimer(1500, 1);
    // Timers firing ~300 ms late: an answer measured at 302 ms took ~2 ms on the path.
    for (let i = 0; i < 8; i++) timer.noteLate(300, 1000 + i);
    timer.sample('198.18.0.1', 302, undefined, 1010);
    expect(timer.timeout('198.18.0.1', 0)).toBeLessThan(10);
    // A delay last seen more than a second ago no longer counts.
    timer.sample('198.18.0.2', 302, undefined, 5000);
    expect(timer.timeout('198.18.0.2', 0)).toBeGreaterThan(300);
  });

  test('a timing probe is due to a port that accepted, once per interval without an answer from the host', () => {
    const timer = new ProbeTimer(1500, 100);
    // Refusals name no port to time against.
    timer.sample('198.18.0.1', 1, undefined, 0);
    expect(timer.timingPort('198.18.0.1', TIMING_PROBE_AFTER_MS)).toBeUndefined();
    timer.sample('198.18.0.1', 1, 8080, 0);
    expect(timer.timingPort('198.18.0.1', TIMING_PROBE_AFTER_MS - 1)).toBeUndefined();
    expect(timer.timingPort('198.18.0.1', TIMING_PROBE_AFTER_MS)).toBe(8080);
    // Sent: the next one an interval later.
    expect(timer.timingPort('198.18.0.1', TIMING_PROBE_AFTER_MS + 1)).toBeUndefined();
    expect(timer.timingPort('198.18.0.1', 2 * TIMING_PROBE_AFTER_MS)).toBe(8080);
    expect(timer.timingPort('198.18.0.2', 10_000)).toBeUndefined();
  });

  test('whatever the samples, a timeout stays within [floor, longest] and does not shrink from one attempt to the next', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 5000 }),
        fc.integer({ min: 1, max: 5000 }),
        fc.array(fc.tuple(fc.integer({ min: 0, max: 3 }), fc.double({ min: 0, max: 20_000, noNaN: true })), { maxLength: 40 }),
        fc.integer({ min: 0, max: 4 }),
        (a, b, samples, host) => {
          const [floor, longest] = a <= b ? [a, b] : [b, a];
          const timer = new ProbeTimer(longest, floor);
          for (const [h, ms] of samples) timer.sample(`198.18.0.${h}`, ms);
          const ip = `198.18.0.${host}`;
          let previous = 0;
          for (let attempt = 0; attempt < 4; attempt++) {
            const t = timer.timeout(ip, attempt);
            expect(Number.isInteger(t)).toBe(true);
            expect(t).toBeGreaterThanOrEqual(floor);
            expect(t).toBeLessThanOrEqual(longest);
            expect(t).toBeGreaterThanOrEqual(previous);
            previous = t;
          }
          // With no answer at all, every probe waits the longest timeout.
          if (samples.length === 0) expect(timer.timeout(ip, 0)).toBe(longest);
        },
      ),
    );
  });

  test("a timer handed to sweeps keeps what each measured for the next (a visit's rest after its first look)", async () => {
    const timer = probeTimerFor({ timeoutMs: 1500, minTimeoutMs: 100 });
    expect(timer.timeout('127.0.0.1', 0)).toBe(1500);
    const first = await runConnectSweep({ targets: ['127.0.0.1'], ports: open, allow: loopback, timer });
    expect(first.open.get('127.0.0.1')).toEqual(open);
    // Loopback answers in well under a millisecond: the next sweep of this host starts at the floor.
    expect(timer.timeout('127.0.0.1', 0)).toBe(100);
    // A sweep without the timer measures on its own and leaves it as it was.
    const before = timer.timeout('127.0.0.2', 0);
    await runConnectSweep({ targets: ['127.0.0.1'], ports: open, allow: loopback });
    expect(timer.timeout('127.0.0.2', 0)).toBe(before);
  });

  test('refuses a shortest timeout out of range, naming it', async () => {
    await expect(
      runConnectSweep({ targets: ['127.0.0.1'], ports: [1], allow: loopback, timeoutMs: 1000, minTimeoutMs: 0 }),
    ).rejects.toThrow(/shortest per-port timeout of 1-600000 ms, got 0.*connect-sweep minTimeoutMs|connect-sweep minTimeoutMs/s);
  });
});
