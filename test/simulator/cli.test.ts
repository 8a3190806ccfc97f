import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test, vi } from 'vitest';
import { loadNmapServices } from '../../src/catalog/index.js';
import { describeRollout } from '../../src/cli/commands/showcase.js';
import { main } from '../../src/cli/main.js';
import { loadRecording } from '../../src/recording/index.js';
import { type SimulationResult, simulate } from '../../simulator/index.js';
import { writeGeneratedScope } from '../../simulator/synthetic/index.js';
import { createStrategy, strategyNames } from '../../strategies/index.js';

let dir: string;
let recording: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'pb-simulate-'));
  recording = join(dir, 'scope.ndjson');
  await writeGeneratedScope({ profile: 'enterprise', hosts: 300, epochs: 3, seed: 'cli' }, recording);
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Run the CLI in-process; returns the exit code and what went to stdout and stderr. */
async function run(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const out = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    stdout += String(chunk);
    return true;
  });
  const err = vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
    stderr += String(chunk);
    return true;
  });
  try {
    const code = await main(['node', 'portbandit', ...args]);
    return { code, stdout, stderr };
  } finally {
    out.mockRestore();
    err.mockRestore();
  }
}

describe('portbandit simulate', () => {
  test("the text report's rollout line says when the port was first found anywhere in the scope", async () => {
    const { code, stdout } = await run('simulate', '--recording', recording, '--strategy', 'top-k', '--budget', '20', '--seed', '7');
    expect(code).toBe(0);
    // top-k at 20 probes never reaches the generator's rollout port (outside nmap's table).
    expect(stdout).toMatch(/rollout of port \d+ to 198\.18\.\d+\.0\/24 at epoch 1: .*; the port first found anywhere in the scope never\n/);
  });

  test('--json prints exactly one JSON object, equal to an in-process simulate() of the same inputs', async () => {
    const { code, stdout } = await run(
      'simulate',
      '--recording',
      recording,
      '--strategy',
      'top-k',
      '--budget',
      '20',
      '--seed',
      '7',
      '--json',
    );
    expect(code).toBe(0);
    expect(stdout.endsWith('\n')).toBe(true);
    expect(stdout.trim().split('\n')).toHaveLength(1);
    const result = JSON.parse(stdout);
    expect(result).toMatchObject({
      strategy: 'top-k',
      budget: 20,
      seed: '7',
      batch: 256,
      hosts: 300,
      epochs: 3,
      hostEpochs: 900,
      probes: 900 * 20,
    });
    expect(result.found).toBeLessThanOrEqual(result.total);
    const rec = await loadRecording(recording);
    const direct = simulate(rec, createStrategy({ strategy: 'top-k', budget: 20 }, { catalog: loadNmapServices() }), {
      seed: '7',
      params: {},
    });
    expect(stdout).toBe(JSON.stringify(direct) + '\n');
  });

  test('the same flags give byte-identical output; another seed changes a random strategy', async () => {
    const args = ['simulate', '--recording', recording, '--strategy', 'random', '--budget', '50', '--batch', '16', '--json'];
    const a = await run(...args, '--seed', 'x');
    const b = await run(...args, '--seed', 'x');
    const c = await run(...args, '--seed', 'y');
    expect(a.stdout).toBe(b.stdout);
    expect(JSON.parse(a.stdout).perHost).toBeUndefined();
    expect(a.stdout).not.toBe(c.stdout);
  });

  test('without --json a readable summary goes to stdout', async () => {
    const { code, stdout } = await run('simulate', '--recording', recording, '--strategy', 'fixed', '--budget', '10', '--seed', '1');
    expect(code).toBe(0);
    expect(stdout).toMatch(/^strategy fixed, budget 10, seed 1, batch 256\n/);
    expect(stdout).toMatch(/coverage \d+\.\d\d% \(\d+ of \d+ services\), precision/);
    expect(stdout).toMatch(/\ntag +hosts +services +coverage +precision +new +found +mean delay\n/);
    // The per-tag new-service count agrees with the scope-wide line (each host here has one tag).
    const scopeNew = Number(/new services: (\d+) appeared/.exec(stdout)![1]);
    const table = stdout.split('\n\n')[1]!.split('\n').slice(1);
    expect(table.reduce((n, line) => n + Number(line.trim().split(/ +/)[5]), 0)).toBe(scopeNew);
  });

  test('--services feeds a Natlas services file to fixed, --per-host adds the breakdown, --state-out writes the state', async () => {
    const services = join(dir, 'natlas-services');
    writeFileSync(services, '# mine\nssh\t22/tcp\nhttp\t80/tcp\ndns\t53/udp\nhttps\t443/tcp\n');
    const stateOut = join(dir, 'state.json');
    const { code, stdout } = await run(
      'simulate',
      '--recording', recording,
      '--strategy', 'fixed',
      '--services', services,
      '--budget', '2',
      '--seed', '1',
      '--per-host',
      '--state-out', stateOut,
      '--json',
    ); // prettier-ignore
    expect(code).toBe(0);
    const result = JSON.parse(stdout);
    expect(result.params).toEqual({ ports: [22, 80, 443] });
    expect(result.probes).toBe(900 * 2);
    expect(result.perHost.ip).toHaveLength(300);
    expect(result.perHost.probes.reduce((a: number, b: number) => a + b, 0)).toBe(result.probes);
    expect(JSON.parse(readFileSync(stateOut, 'utf8'))).toEqual({});
  });

  test('must-have and excluded ports reach the strategy', async () => {
    const base = ['simulate', '--recording', recording, '--strategy', 'top-k', '--budget', '1', '--seed', '1', '--json'];
    const plain = JSON.parse((await run(...base)).stdout);
    const excluded = JSON.parse((await run(...base, '--exclude', '1-79,81-65535')).stdout);
    const mustHave = JSON.parse((await run(...base, '--must-have', '80')).stdout);
    // With budget 1, top-k probes only port 80 (nmap's most frequent): excluding every other
    // port or insisting on 80 changes nothing, excluding 80 changes the result.
    expect(excluded.found).toBe(plain.found);
    expect(mustHave.found).toBe(plain.found);
    const no80 = JSON.parse((await run(...base, '--exclude', '80')).stdout);
    expect(no80.found).not.toBe(plain.found);
  });

  const learner = strategyNames.find((n) => !['fixed', 'top-k', 'random'].includes(n));

  test.skipIf(learner === undefined)('a learned state saved with --state-out warm-starts the next run with --state-in', async () => {
    const stateFile = join(dir, `${learner}.state.json`);
    const base = ['simulate', '--recording', recording, '--strategy', learner!, '--budget', '20', '--seed', '3', '--json'];
    const cold = await run(...base, '--state-out', stateFile);
    expect(cold.code).toBe(0);
    const state = JSON.parse(readFileSync(stateFile, 'utf8'));
    expect(Object.keys(state).length).toBeGreaterThan(0);
    const warm = await run(...base, '--state-in', stateFile);
    expect(warm.code).toBe(0);
    expect(warm.stdout).not.toBe(cold.stdout);
  });

  test.each([
    [['--strategy', 'nope', '--budget', '10'], /argument 'nope' is invalid\. Allowed choices are fixed, top-k, random/],
    [['--strategy', 'top-k', '--budget', 'lots'], /expected a number, got "lots"/],
    [['--strategy', 'top-k'], /required option '--budget <n>' not specified/],
    [['--strategy', 'top-k', '--budget', '10', '--batch', '0'], /expected an integer from 1/],
    [['--strategy', 'top-k', '--budget', '10', '--param', 'k=3'], /unknown parameter "k" for strategy top-k/],
    [['--strategy', 'top-k', '--budget', '10', '--must-have', '22', '--exclude', '22'], /port 22 is both must-have and excluded/],
    [['--strategy', 'top-k', '--budget', '10', '--exclude', '80-70'], /--exclude: expected a range within 1-65535 with start <= end/],
    [['--strategy', 'top-k', '--budget', '10', '--services', '/nonexistent'], /--services: strategy top-k takes no services list/],
  ])('bad flags fail with a clear message: %j', async (flags, message) => {
    const { code, stdout, stderr } = await run('simulate', '--recording', recording, '--seed', '1', ...flags);
    expect(code).not.toBe(0);
    expect(stdout).toBe('');
    expect(stderr).toMatch(message);
  });

  test('a missing recording or a broken state file is named in the error', async () => {
    const missing = await run('simulate', '--recording', join(dir, 'nope.ndjson'), '--strategy', 'top-k', '--budget', '10', '--seed', '1');
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('nope.ndjson');
    const broken = join(dir, 'broken.json');
    writeFileSync(broken, '{"oops"');
    const state = await run(
      'simulate',
      '--recording',
      recording,
      '--strategy',
      'top-k',
      '--budget',
      '10',
      '--seed',
      '1',
      '--state-in',
      broken,
    );
    expect(state.code).toBe(2);
    expect(state.stderr).toMatch(/broken\.json: expected a JSON strategy state .*\[PB_ERR_STRATEGY_STATE\]/);
  });
});

describe('portbandit showcase', () => {
  test('replays every registered strategy on a generated scope', async () => {
    const { code, stdout } = await run('showcase', '--hosts', '256', '--epochs', '2', '--budget', '20', '--json');
    expect(code).toBe(0);
    const out = JSON.parse(stdout);
    expect(out.results.map((r: { strategy: string }) => r.strategy)).toEqual(strategyNames);
    for (const r of out.results) expect(r).toMatchObject({ hosts: 256, epochs: 2, budget: 20 });
  });

  test('prints a table and how to run the full thing', async () => {
    const { code, stdout } = await run('showcase', '--hosts', '256', '--epochs', '2', '--budget', '20');
    expect(code).toBe(0);
    expect(stdout).toMatch(/\nstrategy +coverage +precision/);
    expect(stdout).toMatch(/\ntop-k +\d+\.\d%/);
    expect(stdout).toContain('portbandit simulate --recording scope.ndjson');
  });

  test("says what the rollout column measured: the port, nmap's rank, and when each strategy first found it", () => {
    const rollout = { port: 46321, subnet: '198.18.1.0/24', epoch: 4, hosts: 201, within0: 0, within1: 0, within2: 0, never: 1 };
    const results = [
      { strategy: 'fixed', rollout: { ...rollout, knownEpoch: null } },
      { strategy: 'adaptive', rollout: { ...rollout, knownEpoch: 6 } },
      { strategy: 'none', rollout: null },
    ] as unknown as SimulationResult[];
    const ranks = new Map([[9200, 820]]);
    const catalog = { rank: (p: number) => ranks.get(p) ?? -1 };
    expect(describeRollout({ ...rollout, knownEpoch: null }, results, catalog)).toBe(
      'The rollout: port 46321 (in no nmap list) opened on 201 hosts of 198.18.1.0/24 in epoch 4.\n' +
        'First found anywhere (before the rollout epoch: it could spread at once): fixed never, adaptive epoch 6.',
    );
    expect(describeRollout({ ...rollout, port: 9200, knownEpoch: null }, results, catalog)).toContain("port 9200 (nmap's rank 821)");
  });
});
