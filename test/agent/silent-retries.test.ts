import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { type ScanConfig, ScanPipeline, masscanRateInUse, masscanSendPlan } from '../../agent/index.js';
import type { WorkItem } from '../../src/protocol/index.js';
import { installStandIns, MASSCAN_REPORTING_STANDIN, standInScanConfig } from '../helpers/stand-ins.js';
import { workItem } from '../helpers/work-item.js';

describe('the rate a run holds follows its own retries', () => {
  test('a run of silent rounds (no retry) holds its planned rate for its planned time, not the agent-wide retries', () => {
    const now = 10_000;
    // 300,000 probes at 50,000/s: 6 s of sending once, 2 x 7 s with one retry.
    const once = { size: 300_000, rate: masscanSendPlan(300_000, 50_000, 0).rate, started: now, retries: 0 };
    expect(masscanSendPlan(300_000, 50_000, 0).sendMs).toBe(6000);
    expect(masscanSendPlan(300_000, 50_000, 1).sendMs).toBe(14_000);
    expect(masscanRateInUse([once], { retries: 1 }, now + 5_000)).toBe(50_000);
    // Done sending after 6 s, although a run with the agent's retry would still send.
    expect(masscanRateInUse([once], { retries: 1 }, now + 7_000)).toBe(0);
    expect(masscanRateInUse([{ ...once, retries: undefined }], { retries: 1 }, now + 7_000)).toBe(50_000);
  });
});

/**
 * Which --retries each masscan run gets: a stand-in masscan (sends nothing, reports nothing open)
 * records its argv. No nmap, no sight check: the runs' arguments are what this is about.
 */
describe('silent rounds are swept without a retry', () => {
  let standIns: ReturnType<typeof installStandIns>;
  let argvLog = '';

  beforeAll(() => {
    standIns = installStandIns('pb-silent-retries-', { masscan: MASSCAN_REPORTING_STANDIN }, (dir) => ({
      PB_STANDIN_LOG: (argvLog = join(dir, 'argv.ndjson')),
      PB_STANDIN_MASSCAN_OPEN: '[]',
    }));
  });
  afterAll(() => standIns?.restore());

  const runs = (): string[][] =>
    existsSync(argvLog)
      ? readFileSync(argvLog, 'utf8')
          .split('\n')
          .filter(Boolean)
          .map((l) => JSON.parse(l) as string[])
      : [];
  /** The --retries of each run since `from`, keyed by its targets. */
  const retriesByTargets = (from: number): Record<string, string> =>
    Object.fromEntries(
      runs()
        .slice(from)
        .map((argv) => [argv.slice(0, argv.indexOf('-p')).join(' '), argv[argv.indexOf('--retries') + 1]!]),
    );
  const config = (over: Partial<ScanConfig> = {}): ScanConfig => {
    const base = standInScanConfig(() => {}, 40_000);
    return {
      ...base,
      masscan: { ...base.masscan, retries: 1 },
      tools: { nmap: null, masscan: 'masscan', rawSockets: true },
      masscanSightCheck: 0,
      ...over,
    };
  };
  const item = (ip: string, ports: number[], over: Partial<WorkItem> = {}): WorkItem =>
    workItem({ ip, leaseId: `lease-${ip}`, ports, ...over, scan: { preflight: 'masscan', versionDetection: false } });
  async function scan(pipeline: ScanPipeline, items: WorkItem[]): Promise<number> {
    let results = 0;
    await pipeline.scan(items, (o) => {
      if (o.kind !== 'result') throw new Error(o.reason);
      results++;
    });
    return results;
  }

  test('a run of silent rounds goes with no retry by default; a run of a round that is not silent with --retries', async () => {
    // Arrange: a first look of one host, and a later round of another whose first look found nothing.
    const from = runs().length;
    const pipeline = new ScanPipeline(config());

    // Act
    const results = await scan(pipeline, [item('127.0.0.1', [1, 2, 3]), item('127.0.0.2', [4, 5, 6], { round: 1, silent: true })]);

    // Assert
    expect(results).toBe(2);
    expect(retriesByTargets(from)).toEqual({ '127.0.0.1': '1', '127.0.0.2': '0' });
  });

  test('silentRetries (--silent-retries) sets the silent runs’ retries', async () => {
    const from = runs().length;
    const pipeline = new ScanPipeline(config({ silentRetries: 2 }));
    await scan(pipeline, [item('127.0.0.1', [1, 2, 3]), item('127.0.0.2', [4, 5, 6], { round: 1, silent: true })]);
    expect(retriesByTargets(from)).toEqual({ '127.0.0.1': '1', '127.0.0.2': '2' });
  });

  test('a silent round that shares its run with a round that is not silent gets the run’s --retries', async () => {
    // A silent round that has waited half its lease goes with the next wave, and the same ports
    // put both hosts in one run.
    const from = runs().length;
    const now = Date.now();
    const pipeline = new ScanPipeline(config());
    await scan(pipeline, [
      item('127.0.0.1', [1, 2, 3]),
      item('127.0.0.2', [1, 2, 3], { round: 1, silent: true, issuedAt: now - 70_000, deadline: now + 60_000 }),
    ]);
    expect(retriesByTargets(from)).toEqual({ '127.0.0.1 127.0.0.2': '1' });
  });
});
