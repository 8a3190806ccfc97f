import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, describe, expect, it } from 'vitest';
import { loadRecording } from '../../src/recording/index.js';
import { cliProcessArgs } from '../helpers/cli-process.js';
import { runCli } from '../helpers/cli.js';

const root = new URL('../../', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'pb-scope-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Run the real CLI in a process of its own and return its exit code and streams. */
function portbandit(...args: string[]) {
  return execa(process.execPath, [...cliProcessArgs(), ...args], { cwd: root, reject: false });
}

/**
 * The same CLI in this process (`main` with its own streams, test/helpers/cli.ts): one process
 * start (~1 s of CPU) per command was most of this file's cost, and the process path itself is
 * what the first test keeps.
 */
async function inProcess(...args: string[]) {
  const { code, out, err } = await runCli(args);
  return { exitCode: code, stdout: out, stderr: err };
}

describe('portbandit scope', () => {
  it('generates a recording that loads, with the same bytes for the same seed (a process and an in-process run)', async () => {
    const a = join(dir, 'a.ndjson');
    const b = join(dir, 'b.ndjson');
    const args = ['scope', 'generate', '--profile', 'office', '--hosts', '300', '--epochs', '3', '--seed', 's1'];
    const [ra, rb] = await Promise.all([portbandit(...args, '--out', a), inProcess(...args, '--out', b)]);
    expect(ra.exitCode, ra.stderr).toBe(0);
    expect(rb.exitCode, rb.stderr).toBe(0);
    expect(ra.stdout).toBe('');
    expect(ra.stderr).toContain('wrote 901 lines');
    expect(readFileSync(a).equals(readFileSync(b))).toBe(true);
    const rec = await loadRecording(a);
    expect(rec.size).toBe(900);
    expect(rec.header.source).toMatchObject({ profile: 'office', seed: 's1', hosts: 300, epochs: 3 });
  });

  it('lists the known profiles when the profile is unknown, and refuses more hosts than 198.18.0.0/15 holds', async () => {
    const bad = await inProcess(
      'scope',
      'generate',
      '--profile',
      'campus',
      '--hosts',
      '10',
      '--epochs',
      '1',
      '--out',
      join(dir, 'x.ndjson'),
    );
    expect(bad.exitCode).not.toBe(0);
    expect(bad.stderr).toContain('unknown profile "campus"');
    expect(bad.stderr).toContain('internet, enterprise, longtail, orgtail, dmz, office, datacenter, iot');
    const big = await inProcess('scope', 'generate', '--hosts', '131073', '--epochs', '1', '--out', join(dir, 'y.ndjson'));
    expect(big.exitCode).not.toBe(0);
    expect(big.stderr).toContain('198.18.0.0/15');
  });

  it('prints the profiles and their parameters, as text and as JSON', async () => {
    const text = await inProcess('scope', 'profiles');
    expect(text.exitCode).toBe(0);
    expect(text.stdout).toContain('enterprise:');
    expect(text.stdout).toContain('pseudoShare');
    const json = await inProcess('scope', 'profiles', '--json');
    const parsed = JSON.parse(json.stdout) as Record<string, { spec: { deadShare: number } }>;
    expect(Object.keys(parsed)).toContain('longtail');
    expect(parsed.enterprise!.spec.deadShare).toBe(0.25);
  });
});
