import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { AllowList, scanBatch } from '../../agent/index.js';
import type { WorkItem } from '../../src/protocol/index.js';
import { workItem } from '../helpers/work-item.js';

const HOSTS = 14;

describe('one cancel signal for every scanner in flight (an nmap stand-in that sends nothing)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pb-signal-'));
  const savedPath = process.env.PATH;
  beforeAll(() => {
    // An "nmap" first on PATH that runs for a second and fails, so all 14 runs are in flight together.
    writeFileSync(join(dir, 'nmap'), '#!/bin/sh\nsleep 1\necho "stand-in: no scan" >&2\nexit 3\n');
    chmodSync(join(dir, 'nmap'), 0o755);
    process.env.PATH = `${dir}${delimiter}${savedPath ?? ''}`;
  });
  afterAll(() => {
    process.env.PATH = savedPath;
    rmSync(dir, { recursive: true, force: true });
  });

  test(`${HOSTS} nmap runs at once on the agent's signal print no MaxListenersExceededWarning, and all report`, async () => {
    const items: WorkItem[] = Array.from({ length: HOSTS }, (_, i) =>
      workItem({ leaseId: `lease-${i}`, ip: `127.0.3.${i + 1}`, deadline: Date.now() + 120_000 }),
    );
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(`${w.name}: ${w.message}`);
    process.on('warning', onWarning);
    const controller = new AbortController();

    // Act
    let outcome;
    try {
      outcome = await scanBatch(items, {
        allow: AllowList.parse(['127.0.0.0/8']),
        scriptsAllow: new Set(),
        preflight: 'auto',
        tools: { nmap: 'nmap', masscan: null, rawSockets: false },
        masscan: { rate: 1000, retries: 0, waitSeconds: 0 },
        connect: { concurrency: 16, timeoutMs: 500, retries: 0 },
        pseudoServiceThreshold: 100,
        nmapParallel: HOSTS,
        signal: controller.signal,
        log: () => {},
      });
      await new Promise((resolve) => setImmediate(resolve)); // warnings are emitted on the next tick
    } finally {
      process.off('warning', onWarning);
    }

    // Assert
    expect(warnings.filter((w) => /MaxListenersExceeded/.test(w))).toEqual([]);
    expect(outcome.submissions.map((s) => s.ip).sort()).toEqual(items.map((i) => i.ip).sort());
    // Each host reported, nmap's failure noted on it (the cancel signal was not what ended them).
    expect(outcome.submissions.every((s) => s.incomplete !== undefined && /nmap/.test(s.incomplete))).toBe(true);
  }, 60_000);
});
