import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runExperiment } from '../../experiments/runner.js';
import { loadExperimentSpec } from '../../experiments/spec.js';
import { writeTinyRecording } from './helpers.js';

const cellFiles = (dir: string) =>
  existsSync(join(dir, 'cells')) ? readdirSync(join(dir, 'cells')).filter((f) => f.endsWith('.json')).length : 0;

describe('a killed experiment', () => {
  let dir: string;
  let specFile: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'pb-kill-'));
    writeTinyRecording(join(dir, 'rec.ndjson'), { hosts: 120, epochs: 6, seed: 'kill' });
    specFile = join(dir, 'exp.json');
    writeFileSync(
      specFile,
      JSON.stringify({
        name: 'kill',
        recordings: [{ file: 'rec.ndjson' }],
        strategies: ['fixed', 'thompson', 'random'],
        budgets: [10, 40],
        seeds: [1, 2, 3],
        bootstrap: { replicates: 30 },
      }),
    );
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('resumes from its cache after SIGKILL and ends with the same results as an uninterrupted run', async () => {
    const killed = join(dir, 'killed');
    // The CLI from the TypeScript sources, in its own process, so it can really be killed.
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', 'src/cli/main.ts', 'experiment', specFile, '--out', killed, '--workers', '1'],
      {
        cwd: process.cwd(),
        stdio: 'ignore',
      },
    );
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    try {
      const deadline = Date.now() + 60_000;
      while (cellFiles(killed) < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      child.kill('SIGKILL');
      await exited;
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
    const survived = cellFiles(killed);
    expect(survived).toBeGreaterThanOrEqual(2);
    expect(survived).toBeLessThan(18);
    expect(existsSync(join(killed, 'results.ndjson'))).toBe(false);

    const spec = loadExperimentSpec(specFile);
    const resumed = await runExperiment(spec, { out: killed, workers: 1, skipReport: true });
    expect(resumed.cached).toBe(survived);
    const clean = await runExperiment(spec, { out: join(dir, 'clean'), workers: 2, skipReport: true });
    expect(clean.cached).toBe(0);
    expect(readFileSync(join(killed, 'results.ndjson'), 'utf8')).toBe(readFileSync(join(dir, 'clean', 'results.ndjson'), 'utf8'));
    expect(readFileSync(join(killed, 'summary.json'), 'utf8')).toBe(readFileSync(join(dir, 'clean', 'summary.json'), 'utf8'));
  }, 120_000);
});
