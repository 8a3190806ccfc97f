import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { fc, test } from '@fast-check/vitest';
import { afterAll, beforeAll, describe, expect } from 'vitest';
import { AllowList, type ScanConfig, scanBatch } from '../../agent/index.js';
import { leaseAllowance } from '../../agent/agent.js';
import { masscanPortsThatFit, masscanRateInUse, masscanShares, masscanWaitMs } from '../../agent/scan-batch.js';
import { masscanSendPlan } from '../../agent/scanners/masscan.js';
import { PortRanges } from '../../src/core/ports.js';
import type { WorkItem } from '../../src/protocol/protocol.js';

/**
 * An agent holds no more masscan work than its --rate sends within its leases: it leases more
 * only while what it holds takes less than half a lease, and a masscan run that could not end
 * before its lease deadline probes what fits and reports the rest unknown. Before, a /24 under a
 * budget that covers the port space (33.5M packets at the default 10,000/s: 56 min) was leased
 * whole against a 15-minute lease; in the lab (30 s leases, a /28) the same 16 hosts were handed
 * out again every 33 s while their first masscan run went on, three runs sharing the rate.
 */

const overhead = { retries: 0, waitSeconds: 0 }; // 2 s of start-up

describe('how much masscan work fits', () => {
  test('all ports without a deadline or with time to spare; what fits after the start-up otherwise; none when the start-up does not fit', () => {
    const now = 1_000_000;
    expect(masscanPortsThatFit(65_535, 32, 10_000, overhead, Infinity, now)).toBe(65_535);
    expect(masscanPortsThatFit(1000, 2, 1000, overhead, now + 10_000, now)).toBe(1000); // 2,000 probes in 8 s at 1,000/s
    expect(masscanPortsThatFit(65_535, 4, 1000, overhead, now + 10_000, now)).toBe(2000); // 8 s x 1,000 / 4 targets
    expect(masscanPortsThatFit(65_535, 4, 1000, { retries: 1, waitSeconds: 2 }, now + 10_000, now)).toBe(500); // (10 - 6) s x 1,000 / (4 x 2)
    expect(masscanPortsThatFit(100, 1, 1000, overhead, now + 1500, now)).toBe(0);
    expect(masscanPortsThatFit(100, 1, 1000, overhead, now - 1, now)).toBe(0);
    // One retry: 4 s of start-up, wait and retry spacing, then at least 1.33 s of sending however small the run.
    expect(masscanPortsThatFit(6, 1, 50_000, { retries: 1, waitSeconds: 0 }, now + 5000, now)).toBe(0);
    expect(masscanPortsThatFit(6, 1, 50_000, { retries: 1, waitSeconds: 0 }, now + 5400, now)).toBe(6);
  });

  test.prop([
    fc.integer({ min: 1, max: 65_535 }),
    fc.integer({ min: 1, max: 1024 }),
    fc.integer({ min: 1, max: 1_000_000 }),
    fc.record({ retries: fc.integer({ min: 0, max: 10 }), waitSeconds: fc.integer({ min: 0, max: 60 }) }),
    fc.integer({ min: -10_000, max: 3_600_000 }),
  ])('never more than asked, and what it returns is sent before the deadline', (ports, targets, rate, masscan, left) => {
    const now = 5_000_000;
    const fit = masscanPortsThatFit(ports, targets, rate, masscan, now + left, now);
    expect(fit).toBeGreaterThanOrEqual(0);
    expect(fit).toBeLessThanOrEqual(ports);
    // What masscan really sends (retries, and the slower rate of a small run, included) ends in time.
    const { sendMs } = masscanSendPlan(fit * targets, rate, masscan.retries);
    if (fit > 0) expect(now + (2 + masscan.waitSeconds) * 1000 + sendMs).toBeLessThanOrEqual(now + left + 1e-6);
  });
});

describe('how many items an agent asks for', () => {
  test('the free slots while its rate keeps up; what fits of the last item size; nothing while it holds enough; one when it holds nothing', () => {
    expect(leaseAllowance({ free: 256, backlog: 0, capacity: Infinity, itemCost: 0, holding: false })).toBe(256);
    expect(leaseAllowance({ free: 256, backlog: 0, capacity: 4_500_000, itemCost: 100, holding: false })).toBe(256);
    expect(leaseAllowance({ free: 256, backlog: 0, capacity: 4_500_000, itemCost: 131_070, holding: false })).toBe(34);
    expect(leaseAllowance({ free: 256, backlog: 4_400_000, capacity: 4_500_000, itemCost: 131_070, holding: true })).toBe(1);
    expect(leaseAllowance({ free: 256, backlog: 4_500_000, capacity: 4_500_000, itemCost: 131_070, holding: true })).toBe(0);
    expect(leaseAllowance({ free: 256, backlog: 9_000_000, capacity: 4_500_000, itemCost: 131_070, holding: false })).toBe(1);
    expect(leaseAllowance({ free: 0, backlog: 0, capacity: Infinity, itemCost: 0, holding: true })).toBe(0);
  });

  test.prop([
    fc.integer({ min: 0, max: 4096 }),
    fc.integer({ min: 0, max: 50_000_000 }),
    fc.integer({ min: 1, max: 50_000_000 }),
    fc.integer({ min: 0, max: 1_000_000 }),
    fc.boolean(),
  ])(
    'within the free slots; none while holding at least the capacity; never more items of the last size than the room',
    (free, backlog, capacity, itemCost, holding) => {
      const n = leaseAllowance({ free, backlog, capacity, itemCost, holding });
      expect(n).toBeGreaterThanOrEqual(0);
      expect(n).toBeLessThanOrEqual(free);
      if (free > 0 && !holding) expect(n).toBeGreaterThanOrEqual(1);
      if (holding && backlog >= capacity) expect(n).toBe(0);
      if (n > 1 && itemCost > 0) expect(n * itemCost).toBeLessThanOrEqual(capacity - backlog);
    },
  );
});

describe('a masscan run bounded by its lease (a masscan stand-in on loopback that sends nothing)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pb-capacity-'));
  const argvLog = join(dir, 'argv.ndjson');
  const savedPath = process.env.PATH;
  const savedLog = process.env.PB_STANDIN_LOG;

  beforeAll(() => {
    // Records its argv and exits: no packet leaves (and nothing is found open).
    writeFileSync(
      join(dir, 'masscan'),
      `#!/usr/bin/env node\nrequire('node:fs').appendFileSync(process.env.PB_STANDIN_LOG, JSON.stringify(process.argv.slice(2)) + '\\n');\n`,
    );
    chmodSync(join(dir, 'masscan'), 0o755);
    process.env.PATH = `${dir}${delimiter}${savedPath ?? ''}`;
    process.env.PB_STANDIN_LOG = argvLog;
  });
  afterAll(() => {
    process.env.PATH = savedPath;
    if (savedLog === undefined) delete process.env.PB_STANDIN_LOG;
    else process.env.PB_STANDIN_LOG = savedLog;
    rmSync(dir, { recursive: true, force: true });
  });

  const config = (log: (line: string) => void): ScanConfig => ({
    allow: AllowList.parse(['127.0.0.0/8']),
    scriptsAllow: new Set(),
    preflight: 'masscan',
    tools: { nmap: null, masscan: 'masscan', rawSockets: true },
    masscan: { rate: 1000, retries: 0, waitSeconds: 0, route: { adapter: 'lo', adapterIp: '127.0.0.1', routerIp: '127.0.0.1' } },
    connect: { concurrency: 16, timeoutMs: 500, retries: 0 },
    pseudoServiceThreshold: 100,
    log,
  });

  const item = (ip: string, ports: number[], deadline: number): WorkItem => ({
    protocol: 1,
    leaseId: `lease-${ip}`,
    ip,
    tags: [],
    ports,
    round: 0,
    cycle: 1,
    reason: 'cycle',
    issuedAt: Date.now(),
    deadline,
    scan: { versionDetection: false, scripts: [], hostTimeoutSeconds: 30, scriptTimeoutSeconds: 10, preflight: 'masscan' },
  });

  test('probes the ports that fit before the deadline and reports the rest unknown, not closed; with time enough, all of them', async () => {
    // Arrange: 5,000 ports at 1,000 packets/s is 5 s of sending; the first lease ends in 12 s
    // (its preflight must be done in 6: half of what is left), the second in 10 minutes.
    const ports = Array.from({ length: 5000 }, (_, i) => i + 1);
    const logs: string[] = [];

    // Act
    const short = await scanBatch(
      [item('127.0.0.41', ports, Date.now() + 12_000)],
      config((l) => logs.push(l)),
    );
    const long = await scanBatch(
      [item('127.0.0.42', ports, Date.now() + 600_000)],
      config((l) => logs.push(l)),
    );

    // Assert: the stand-in was asked for a prefix of the list the first time, for all of it the second.
    const runs = readFileSync(argvLog, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as string[]);
    const portsOf = (args: string[]) => PortRanges.parse(args[args.indexOf('-p') + 1]!);
    expect(runs).toHaveLength(2);
    const first = portsOf(runs[0]!);
    expect(first.size).toBeGreaterThan(2000); // ~(6 - 2) s x 1,000/s
    expect(first.size).toBeLessThanOrEqual(4000);
    expect(first.toArray()).toEqual(ports.slice(0, first.size));
    expect(portsOf(runs[1]!).size).toBe(5000);
    const [cut] = short.submissions;
    expect(cut).toMatchObject({ ip: '127.0.0.41', status: 'up', ports: [] });
    expect(cut!.unknownPorts).toBe(`${first.size + 1}-5000`);
    expect(cut!.incomplete).toMatch(/masscan preflight reached the lease deadline with \d+ of 5000 port\(s\) not probed/);
    expect(logs.some((l) => /cannot probe 5000 port\(s\) of 1 host\(s\) before the lease deadline/.test(l))).toBe(true);
    const [whole] = long.submissions;
    expect(whole!.unknownPorts).toBeUndefined();
    expect(whole!.incomplete).toBeUndefined();
  });
});

describe('masscan rate shares', () => {
  const masscan = { rate: 50_000, retries: 1 };

  test('a run alone gets the whole rate; runs of one wave share it by size', () => {
    expect(masscanShares([3_000_000], [], masscan, 0)).toEqual([50_000]);
    expect(masscanShares([1_000_000, 3_000_000], [], masscan, 0)).toEqual([12_500, 37_500]);
  });

  test('a wave beside a sweep sending at the whole rate waits for its end, then gets the whole rate (runs together never exceed --rate)', () => {
    // The sweep: 29 hosts x 64,535 ports, one retry, at 50,000 packets/s, started 32 s ago.
    const sweep = { size: 29 * 64_535, rate: 50_000, started: 0 };
    const sweepEnds = ((sweep.size * 2) / sweep.rate + 2) * 1000; // ms: each probe twice, then the retry's second past the end
    expect(masscanRateInUse([sweep], masscan, 32_000)).toBe(50_000);
    expect(masscanWaitMs([sweep], masscan, 32_000)).toBe(Math.ceil(sweepEnds - 32_000));
    // Started anyway, it would get only the floor (before: ~7,000/s on top of the sweep's 50,000).
    expect(masscanShares([3 * 64_535], [sweep], masscan, 32_000)).toEqual([1000]);
    // Once the sweep is done sending (in its --wait, still in flight), the rate is free again.
    expect(masscanWaitMs([sweep], masscan, sweepEnds)).toBe(0);
    expect(masscanShares([3 * 64_535], [sweep], masscan, sweepEnds)).toEqual([50_000]);
    // A run at a quarter of the rate leaves room: no wait, the rest shared.
    const small = { size: 64_535, rate: 12_500, started: 0 };
    expect(masscanWaitMs([small], masscan, 1000)).toBe(0);
    expect(masscanShares([1, 3], [small], masscan, 1000)).toEqual([9_375, 28_125]);
  });

  test('a run that masscan says still sends holds its rate past its planned end (masscan falls behind under CPU load); once it says it is done, the rate is free', () => {
    const sweep = { size: 7 * 64_535, rate: 50_000, started: 0 };
    const planned = ((sweep.size * 2) / sweep.rate + 2) * 1000;
    const late = planned + 25_000;
    expect(masscanRateInUse([{ ...sweep, sent: false }], masscan, late)).toBe(50_000);
    expect(masscanWaitMs([{ ...sweep, sent: false }], masscan, late)).toBe(250);
    expect(masscanShares([64_535], [{ ...sweep, sent: false }], masscan, late)).toEqual([1000]);
    expect(masscanRateInUse([{ ...sweep, sent: true }], masscan, late)).toBe(0);
    expect(masscanWaitMs([{ ...sweep, sent: true }], masscan, late)).toBe(0);
    // Done by its own account before its planned end (it cannot be): the plan still holds the rate.
    expect(masscanRateInUse([{ ...sweep, sent: true }], masscan, planned - 1)).toBe(50_000);
    // A small run holds only the rate it sends at.
    expect(masscanRateInUse([{ size: 6, rate: 50_000, started: 0, sent: false }], masscan, 1000)).toBe(9);
  });

  test('properties: within [1,000, rate]; a run beside runs that are done gets the whole rate', () => {
    fc.assert(
      fc.property(
        fc.array(fc.nat(5_000_000), { minLength: 1, maxLength: 5 }),
        fc.array(fc.record({ size: fc.nat(5_000_000), rate: fc.integer({ min: 1000, max: 50_000 }), started: fc.nat(600_000) }), {
          maxLength: 4,
        }),
        fc.nat(1_200_000),
        (sizes, inFlight, now) => {
          const rates = masscanShares(sizes, inFlight, masscan, now);
          expect(rates.every((r) => r >= 1000 && r <= masscan.rate)).toBe(true);
          // Together with the runs still sending, never above --rate but for the floor.
          const used = masscanRateInUse(inFlight, masscan, now);
          expect(rates.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(Math.max(0, masscan.rate - used) + 1000 * sizes.length);
          // A wave waits exactly while more than 3/4 of the rate is in use, and until a run's sending ends.
          const wait = masscanWaitMs(inFlight, masscan, now);
          expect(wait > 0).toBe(used > 0.75 * masscan.rate);
          if (wait > 0) expect(masscanRateInUse(inFlight, masscan, now + wait)).toBeLessThan(used);
          const done = inFlight.map((r) => ({
            ...r,
            started: now - Math.ceil(masscanSendPlan(r.size, r.rate, masscan.retries).sendMs) - 1,
          }));
          expect(masscanShares(sizes, done, masscan, now)).toEqual(masscanShares(sizes, [], masscan, now));
        },
      ),
    );
  });
});
