import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fc, test } from '@fast-check/vitest';
import { afterAll, beforeAll, describe, expect } from 'vitest';
import { MasscanRateControl, type ScanConfig, ScanPipeline } from '../../agent/index.js';
import { RATE_CLEAN_SAMPLE, RATE_FLOOR, RATE_MIN_MISSES, RATE_MISS_SHARE } from '../../agent/masscan-rate.js';
import type { ResultSubmission, WorkItem } from '../../src/protocol/protocol.js';
import { listenLoopback } from '../helpers/net.js';
import { installStandIns, standInScanConfig } from '../helpers/stand-ins.js';

/**
 * masscan reports a lost probe as nothing: the agent lowers its rate when runs miss ports that
 * were open at the last visit and are confirmed open now, and raises it again while runs miss none.
 */
describe('the masscan rate control', () => {
  test('halves on misses, rises by a quarter after a clean sample, ignores evidence from runs at an older rate', () => {
    const c = new MasscanRateControl(50_000);
    expect(c.observe(0, 10, 0)).toBeNull();
    // Two of the next 20 missed (10% of 30 known): halve.
    expect(c.observe(0, 20, 2)).toEqual({ from: 50_000, to: 25_000, known: 30, missed: 2 });
    expect(c.rate).toBe(25_000);
    // Runs sent at 50,000 still report: not evidence for 25,000.
    expect(c.observe(0, 10, 10)).toBeNull();
    expect(c.rate).toBe(25_000);
    // A clean sample at the new rate raises it.
    expect(c.observe(1, RATE_CLEAN_SAMPLE, 0)).toEqual({ from: 25_000, to: 31_250, known: RATE_CLEAN_SAMPLE, missed: 0 });
    // One stray miss in a sample keeps the rate and starts a new sample.
    expect(c.observe(2, RATE_CLEAN_SAMPLE, 1)).toBeNull();
    expect(c.rate).toBe(31_250);
    expect(c.observe(2, RATE_CLEAN_SAMPLE - 1, 0)).toBeNull();
  });

  test('misses a halving does not reduce are not the rate: it goes back, and only twice as many misses lower it again', () => {
    const c = new MasscanRateControl(40_000);
    // 10% missed at 40,000: halve.
    expect(c.observe(0, 40, 4)).toEqual({ from: 40_000, to: 20_000, known: 40, missed: 4 });
    // At 20,000 the first misses are too few ports to judge by.
    expect(c.observe(1, 20, 2)).toBeNull();
    // 10% again over 40 ports: halving did not help; back to 40,000.
    expect(c.observe(1, 20, 2)).toEqual({ from: 20_000, to: 40_000, known: 40, missed: 4, notTheRate: { known: 40, missed: 4 } });
    // The same share again changes nothing now (it used to halve, sample after sample, to the floor) ...
    for (let i = 0; i < 20; i++) expect(c.observe(c.generation, 40, 4)).toBeNull();
    expect(c.rate).toBe(40_000);
    // ... twice that share does ...
    expect(c.observe(c.generation, 40, 8)).toMatchObject({ from: 40_000, to: 20_000 });
    // ... and when that halving helps (5% at 20,000), the rate stays there.
    expect(c.observe(c.generation, 40, 2)).toBeNull();
    expect(c.observe(c.generation, 10, 0)).toBeNull();
    expect(c.rate).toBe(20_000);
    // A clean sample clears the baseline: the bar is 5% again.
    expect(c.observe(c.generation, RATE_CLEAN_SAMPLE, 0)).toMatchObject({ from: 20_000, to: 25_000 });
    expect(c.observe(c.generation, 40, 2)).toMatchObject({ from: 25_000, to: 12_500 });
  });

  test.prop([
    fc.integer({ min: 2 * RATE_FLOOR, max: 1_000_000 }),
    // (Up to 95%: when every known port is missed at every rate, no halving can tell why.)
    fc.double({ min: RATE_MISS_SHARE, max: 0.95, noNaN: true }),
    fc.integer({ min: RATE_MIN_MISSES / RATE_MISS_SHARE, max: 400 }),
  ])('a miss share that does not depend on the rate lowers it once at most', (max, share, known) => {
    const c = new MasscanRateControl(max);
    const missed = Math.max(RATE_MIN_MISSES, Math.ceil(share * known));
    let lowest = c.rate;
    for (let i = 0; i < 50; i++) {
      c.observe(c.generation, known, missed);
      lowest = Math.min(lowest, c.rate);
    }
    expect(lowest).toBeGreaterThanOrEqual(Math.floor(max / 2));
    expect(c.rate).toBe(max);
  });

  test.prop([
    fc.integer({ min: 1, max: 10_000_000 }),
    fc.array(fc.record({ stale: fc.boolean(), known: fc.nat(200), missed: fc.nat(200) }), { maxLength: 200 }),
  ])('the rate stays between the floor and --rate whatever the evidence', (max, evidence) => {
    const c = new MasscanRateControl(max);
    for (const e of evidence) {
      const before = c.rate;
      const change = c.observe(e.stale ? c.generation - 1 : c.generation, e.known, e.missed);
      expect(c.rate).toBeGreaterThanOrEqual(Math.min(max, RATE_FLOOR));
      expect(c.rate).toBeLessThanOrEqual(max);
      if (change === null) expect(c.rate).toBe(before);
      else expect(change).toMatchObject({ from: before, to: c.rate });
      if (e.stale) expect(change).toBeNull();
    }
  });
});

describe('a pipeline whose masscan loses packets above a rate (a masscan stand-in that sends nothing; the ports listen on loopback)', () => {
  let standIns: ReturnType<typeof installStandIns>;
  let listeners: Awaited<ReturnType<typeof listenLoopback>>;
  let open: number[] = [];
  let argvLog = '';

  beforeAll(async () => {
    listeners = await listenLoopback(40);
    open = listeners.ports;
    // Reports the listening ports of every target it was asked about, but above 10,000 packets/s
    // only the share a path of 10,000 packets/s delivers (10,000 / rate): the rest were "lost".
    // Records its argv.
    standIns = installStandIns(
      'pb-rate-',
      {
        masscan: `#!/usr/bin/env node
const fs = require('node:fs');
const argv = process.argv.slice(2);
fs.appendFileSync(process.env.PB_STANDIN_LOG, JSON.stringify(argv) + '\\n');
const rate = Number(argv[argv.indexOf('--rate') + 1]);
const out = argv[argv.indexOf('-oD') + 1];
const targets = argv.slice(0, argv.indexOf('-p'));
const open = JSON.parse(process.env.PB_STANDIN_OPEN).filter((_, i, all) => i < all.length * Math.min(1, 10000 / rate));
const lines = targets.flatMap((ip) => open.map((port) => JSON.stringify({ ip, timestamp: '0', port, proto: 'tcp', rec_type: 'status', data: { status: 'open', reason: 'syn-ack', ttl: 64 } })));
fs.writeFileSync(out, lines.join('\\n') + (lines.length ? '\\n' : ''));
`,
      },
      (dir) => ({
        PB_STANDIN_LOG: (argvLog = join(dir, 'argv.ndjson')),
        PB_STANDIN_OPEN: JSON.stringify(open),
      }),
    );
  });
  afterAll(async () => {
    standIns?.restore();
    await listeners?.close();
  });

  const item = (ip: string, ports: number[], verify: number[]): WorkItem => ({
    protocol: 1,
    leaseId: `lease-${ip}`,
    ip,
    tags: [],
    ports,
    verify,
    round: 0,
    cycle: 1,
    reason: 'cycle',
    issuedAt: Date.now(),
    deadline: Date.now() + 600_000,
    scan: { versionDetection: false, scripts: [], hostTimeoutSeconds: 30, scriptTimeoutSeconds: 10, preflight: 'masscan' },
  });

  test('a run that misses ports known open lowers the rate of the next runs, which then see every port', async () => {
    // Arrange: 127.0.0.1 had all 40 ports open at its last visit; the agent's --rate is 40,000.
    const logs: string[] = [];
    const config: ScanConfig = {
      ...standInScanConfig((l) => logs.push(l), 40_000),
      tools: { nmap: null, masscan: 'masscan', rawSockets: true },
    };
    const pipeline = new ScanPipeline(config);
    const ports = [1, 2, 3, ...open];
    const scan = async (): Promise<ResultSubmission> => {
      const got: ResultSubmission[] = [];
      await pipeline.scan([item('127.0.0.1', ports, open)], (o) => {
        if (o.kind === 'result') got.push(o.submission);
        else throw new Error(o.reason);
      });
      return got[0]!;
    };
    const openIn = (r: ResultSubmission) => r.ports.filter((p) => p.state === 'open').map((p) => p.port);

    // Act: three visits of the host.
    const first = await scan();
    const second = await scan();
    const third = await scan();

    // Assert: each visit reports every open port (the first two through the connect re-check of
    // the 30 and 20 masscan missed); masscan ran at 40,000, then 20,000 (fewer misses: the rate's,
    // so halved again), then 10,000, where it lost nothing.
    for (const r of [first, second, third]) expect(openIn(r)).toEqual(open);
    const rates = readFileSync(argvLog, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as string[])
      .map((args) => Number(args[args.indexOf('--rate') + 1]));
    expect(rates).toEqual([40_000, 20_000, 10_000]);
    expect(pipeline.masscanRate).toBe(10_000);
    expect(logs.filter((l) => /masscan missed \d+ of 40 port\(s\) known open and confirmed \(lost packets\)/.test(l))).toHaveLength(2);
    expect(logs).toContain(
      'agent: masscan missed 30 of 40 port(s) known open and confirmed (lost packets): its rate goes from 40000 to 20000 packets/s',
    );
  });
});
