import { afterAll, afterEach, describe, expect, test, vi } from 'vitest';
import { main } from '../../src/cli/main.js';
import { makeTempDir } from './helpers.js';

const tmp = makeTempDir();
afterAll(() => tmp.cleanup());
afterEach(() => vi.restoreAllMocks());

/** Run the real CLI in-process, capturing what it writes. */
async function run(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => ((stdout += String(chunk)), true));
  vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => ((stderr += String(chunk)), true));
  const code = await main(['node', 'portbandit', ...args]);
  vi.restoreAllMocks();
  return { code, stdout, stderr };
}

const FILE = [
  '{"format":"portbandit.recording","version":1,"name":"two-epochs","probed":"1-65535"}',
  '{"epoch":0,"ip":"198.18.0.10","tags":["dmz"],"open":[22,80,443]}',
  '{"epoch":0,"ip":"198.18.0.11","tags":["corp"],"open":[],"services":{"22":"ssh"}}',
  '{"epoch":0,"ip":"198.18.0.12","tags":[],"open":[80],"probed":"1-1024"}',
  '{"epoch":1,"ip":"198.18.0.10","tags":["dmz","web"],"open":[80,443]}',
  '{"epoch":1,"ip":"198.18.0.11","tags":["corp"],"open":[22]}',
].join('\n');

describe('portbandit recording', () => {
  test('info --json reports hosts, epochs, tags with host counts and open services per epoch', async () => {
    const file = tmp.file('info.ndjson', FILE);
    const { code, stdout } = await run('recording', 'info', file, '--json');
    expect(code).toBe(0);
    expect(JSON.parse(stdout)).toEqual({
      file,
      name: 'two-epochs',
      probed: '1-65535',
      probedPorts: 65535,
      probedOverrides: [{ probed: '1-1024', ports: 1024, observations: 1 }],
      hosts: 3,
      epochs: 2,
      observations: 5,
      openServices: 7,
      tags: { corp: { hosts: 1, observations: 2 }, dmz: { hosts: 1, observations: 2 }, web: { hosts: 1, observations: 1 } },
      untaggedHosts: 1,
      perEpoch: [
        { epoch: 0, observations: 3, openServices: 4, hostsWithOpen: 2 },
        { epoch: 1, observations: 2, openServices: 3, hostsWithOpen: 2 },
      ],
      topPorts: [
        { port: 80, open: 3 },
        { port: 22, open: 2 },
        { port: 443, open: 2 },
      ],
    });
  });

  test('info prints a readable table', async () => {
    const { code, stdout } = await run('recording', 'info', tmp.file('info.ndjson', FILE));
    expect(code).toBe(0);
    expect(stdout).toMatch(/^recording\s+two-epochs$/m);
    expect(stdout).toMatch(/^hosts\s+3$/m);
    expect(stdout).toMatch(/^\s+dmz\s+1 hosts\s+2 observations$/m);
    expect(stdout).toMatch(/^\s+1\s+2\s+3\s+2$/m);
  });

  test('validate exits 0 on a valid file', async () => {
    const { code, stdout } = await run('recording', 'validate', tmp.file('ok.ndjson', FILE));
    expect(code).toBe(0);
    expect(stdout).toMatch(/valid \(5 observations, 3 hosts, 2 epochs\)/);
  });

  test('validate reports file:line and what was expected on a bad file', async () => {
    const file = tmp.file('bad.ndjson', `${FILE}\n{"epoch":1,"ip":"198.18.0.12","tags":[],"open":[2000],"probed":"1-1024"}\n`);
    const { code, stdout, stderr } = await run('recording', 'validate', file);
    expect(code).toBe(2);
    expect(stdout).toBe('');
    expect(stderr).toBe(
      `portbandit: ${file}:7: open port 2000 is outside the line's probed set (its "probed": 1-1024) [PB_ERR_RECORDING]\n`,
    );
  });

  test('validate without a file is a usage error', async () => {
    const { code, stderr } = await run('recording', 'validate');
    expect(code).not.toBe(0);
    expect(stderr).toMatch(/missing required argument 'file'/);
  });
});
