import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { main } from '../../src/cli/main.js';
import { createProgress } from '../../experiments/progress.js';
import { writeTinyRecording } from './helpers.js';

describe('portbandit experiment', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'pb-cli-'));
    writeTinyRecording(join(dir, 'tiny.ndjson'), { hosts: 12, epochs: 3, seed: 'cli' });
    writeFileSync(
      join(dir, 'exp.json'),
      JSON.stringify({
        name: 'cli',
        recordings: [{ file: 'tiny.ndjson' }],
        strategies: ['fixed', 'top-k'],
        budgets: [10],
        seeds: [1],
        bootstrap: { replicates: 20 },
      }),
    );
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('runs a spec and prints one JSON object with --json, then resumes from the cache', async () => {
    const out = join(dir, 'out');
    const writes: string[] = [];
    const spy = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
      writes.push(String(chunk));
      return true;
    });
    try {
      expect(await main(['node', 'portbandit', 'experiment', join(dir, 'exp.json'), '--out', out, '--workers', '1', '--json'])).toBe(0);
      expect(await main(['node', 'portbandit', 'experiment', join(dir, 'exp.json'), '--out', out, '--json'])).toBe(0);
    } finally {
      spy.mockRestore();
    }
    const [first, second] = writes.map((w) => JSON.parse(w));
    expect(first).toMatchObject({ experiment: 'cli', cells: 2, ran: 2, cached: 0 });
    expect(second).toMatchObject({ cells: 2, ran: 0, cached: 2 });
    expect(first.files).toContain(join(out, 'report.html'));
  });

  it('rejects a bad --workers value naming it', async () => {
    expect(await main(['node', 'portbandit', 'experiment', join(dir, 'exp.json'), '--out', join(dir, 'o2'), '--workers', 'many'])).not.toBe(
      0,
    );
  });
});

describe('plain progress lines (not a terminal)', () => {
  it('prints a start line, throttled progress with an ETA, and a done line', () => {
    const lines: string[] = [];
    const stream = { isTTY: false, write: (s: string) => lines.push(s) } as unknown as NodeJS.WriteStream;
    let now = 0;
    const progress = createProgress(stream, () => now);
    progress.start(100, 10);
    for (let done = 11; done <= 100; done++) {
      now += 100;
      progress.tick(done, `cell ${done}`);
    }
    progress.stop();
    expect(lines[0]).toBe('experiment: 100 cells, 10 cached, 90 to run\n');
    expect(lines.length).toBeLessThan(60);
    expect(lines.some((l) => /experiment: \d+\/100 cells \(\d+%\), ETA \d+s, last cell \d+/.test(l))).toBe(true);
    expect(lines.at(-2)).toMatch(/100\/100 cells \(100%\)/);
    expect(lines.at(-1)).toMatch(/^experiment: done in 9s/);
  });
});
