import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fc, test } from '@fast-check/vitest';
import { afterAll, describe, expect } from 'vitest';
import { AllowList, MASSCAN_RETRY_SPREAD, masscanSendPlan, runMasscan } from '../../agent/index.js';

/**
 * masscan 1.3.2's transmit loop, as its source reads and as the lab's --packet-trace counted
 * (6 ports at --rate 1000: 2,014 SYNs with --retries 1, 6,020 with --retries 2): the index runs
 * `retries x rate` past the end of the run, and each step sends the probe at index
 * `i + r x rate` (wrapped around the run) for r = retries .. 0. The shuffle is a permutation of
 * the indices, so it changes which probe a count belongs to, not the counts.
 */
function sendsPerProbe(probes: number, rate: number, retries: number): number[] {
  const counts = new Array<number>(probes).fill(0);
  for (let i = 0; i < probes + retries * rate; i++) for (let r = retries; r >= 0; r--) counts[(i + r * rate) % probes]!++;
  return counts;
}

describe('how masscan sends a run', () => {
  test('at full rate a small run is flooded; at the planned rate each probe goes out (retries + 1) x 2.5 times', () => {
    expect(sendsPerProbe(6, 1000, 1).reduce((a, b) => a + b, 0)).toBe(2012);
    const plan = masscanSendPlan(6, 1000, 1);
    expect(plan).toEqual({ rate: 9, packets: 30, sendMs: (30 / 9) * 1000 });
    expect(sendsPerProbe(6, plan.rate, 1)).toEqual([5, 5, 5, 5, 5, 5]);
    // A host's 1,000-port first look at 50,000 packets/s: 102 SYNs per port before, 5 now.
    expect(Math.max(...sendsPerProbe(1000, 50_000, 1))).toBe(102);
    expect(Math.max(...sendsPerProbe(1000, masscanSendPlan(1000, 50_000, 1).rate, 1))).toBe(5);
    // A run at least retries x rate large keeps the rate asked for; no retry, no change.
    expect(masscanSendPlan(2_000_000, 50_000, 1)).toEqual({ rate: 50_000, packets: 2 * 2_050_000, sendMs: 82_000 });
    expect(masscanSendPlan(6, 1000, 0)).toEqual({ rate: 1000, packets: 6, sendMs: 6 });
  });

  test.prop([fc.integer({ min: 1, max: 3000 }), fc.integer({ min: 1, max: 100_000 }), fc.integer({ min: 0, max: 3 })], { numRuns: 200 })(
    'the plan counts what the loop sends; every probe goes out at least retries + 1 times, a small run at most (retries + 1) x ceil(1 + spread + retries / probes) times, never slower than its probes at the rate',
    (probes, rate, retries) => {
      const plan = masscanSendPlan(probes, rate, retries);
      expect(plan.rate).toBeGreaterThanOrEqual(1);
      expect(plan.rate).toBeLessThanOrEqual(rate);
      const counts = sendsPerProbe(probes, plan.rate, retries);
      expect(counts.reduce((a, b) => a + b, 0)).toBe(plan.packets);
      expect(Math.min(...counts)).toBeGreaterThanOrEqual(retries + 1);
      if (plan.rate < rate)
        expect(Math.max(...counts)).toBeLessThanOrEqual((retries + 1) * Math.ceil(1 + MASSCAN_RETRY_SPREAD + retries / probes));
      // Sending takes what the rate asked for would take, or the floor of a small run.
      const asked = (retries + 1) * (probes / rate + retries);
      const floor = (retries + 1) * retries * (1 + 1 / MASSCAN_RETRY_SPREAD);
      expect(plan.sendMs / 1000).toBeLessThanOrEqual(Math.max(asked, floor) + 1e-9);
      expect(plan.sendMs / 1000).toBeGreaterThanOrEqual(asked - 1e-9);
    },
  );
});

describe('runMasscan passes the planned rate', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pb-masscan-plan-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  // A stand-in that records its arguments and sends nothing (it writes no output: nothing answered).
  const standIn = join(dir, 'masscan');
  const argsFile = join(dir, 'args');
  writeFileSync(standIn, `#!/bin/sh\nprintf '%s\\n' "$@" > '${argsFile}'\n`);
  chmodSync(standIn, 0o755);
  // Loopback only: the runner pokes a target's port 9 once masscan should be done (to wake a
  // masscan stuck in its final wait), and a stand-in that sleeps lets that happen.
  const route = { adapter: 'lo', adapterIp: '127.0.0.1', routerIp: '127.0.0.1' };
  const allow = AllowList.parse(['127.0.0.0/8']);

  async function rateOf(targets: string[], ports: number[], rate: number, retries: number): Promise<string> {
    await runMasscan({ targets, ports, allow, rate, retries, waitSeconds: 0, route, masscanPath: standIn });
    const args = readFileSync(argsFile, 'utf8').split('\n');
    return args[args.indexOf('--rate') + 1]!;
  }

  test('onSent fires when the masscan status line says it is waiting for late answers, before it exits; else at its exit', async () => {
    const slow = join(dir, 'masscan-status');
    // masscan's status line, as it writes it (carriage returns, no newline), then its --wait.
    writeFileSync(
      slow,
      `#!/bin/sh\nprintf 'rate:  0.01-kpps, 60.00%% done,   0:00:04 remaining, found=0       \\r' >&2\nsleep 0.2\nprintf 'rate:  0.00-kpps, 100.00%% done, waiting 1-secs, found=0       \\r' >&2\nsleep 1.5\n`,
    );
    chmodSync(slow, 0o755);
    let sentAt = -1;
    const t0 = performance.now();
    await runMasscan({
      targets: ['127.0.0.10'],
      ports: [80],
      allow,
      retries: 0,
      waitSeconds: 0,
      route,
      masscanPath: slow,
      onSent: () => (sentAt = performance.now() - t0),
    });
    const exitAt = performance.now() - t0;
    expect(sentAt).toBeGreaterThanOrEqual(150);
    expect(exitAt - sentAt).toBeGreaterThanOrEqual(1000);
    let calls = 0;
    await runMasscan({ targets: ['127.0.0.10'], ports: [80], allow, route, masscanPath: standIn, onSent: () => calls++ });
    expect(calls).toBe(1);
  });

  test('a small run gets spread x probes / retries, a large one the rate asked for', async () => {
    expect(await rateOf(['127.0.0.10'], [22, 80, 443, 3306, 5432, 8080], 50_000, 1)).toBe('9');
    expect(await rateOf(['127.0.0.10', '127.0.0.11'], [22, 80, 443, 3306, 5432, 8080], 50_000, 2)).toBe('9');
    expect(await rateOf(['127.0.0.10'], [22, 80], 50_000, 0)).toBe('50000');
    const many = Array.from({ length: 2000 }, (_, i) => i + 1);
    expect(await rateOf(['127.0.0.10'], many, 1000, 1)).toBe('1000');
  });
});
