import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, within } from '../helpers/net.js';
import { tempDataDir } from './helpers.js';

const CLI = fileURLToPath(new URL('../../dist/src/cli/main.js', import.meta.url));
const run = promisify(execFile);

// A real `portbandit serve` process and real CLI processes on the same data directory: the
// operator's flow of issue "edits reach the running coordinator".
describe.skipIf(!existsSync(CLI))('CLI edits next to a running `portbandit serve`', () => {
  const data = tempDataDir();
  let server: ChildProcess;
  let port: number;
  let admin: string;
  let stderr = '';
  const cli = (...args: string[]) =>
    run(process.execPath, [CLI, ...args, '--data', data.dir], { env: { ...process.env, PORTBANDIT_LOG_LEVEL: 'silent' } });
  const api = async (path: string) =>
    (await fetch(`http://127.0.0.1:${port}${path}`, { headers: { authorization: `Bearer ${admin}` } })).json() as Promise<
      Record<string, unknown>
    >;

  beforeAll(async () => {
    port = await freePort();
    server = spawn(process.execPath, [CLI, 'serve', '--port', String(port), '--data', data.dir, '--log-level', 'warn'], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    server.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    await within(30_000, async () => /pbk_[A-Za-z0-9_-]+/.test(stderr));
    admin = /pbk_[A-Za-z0-9_-]+/.exec(stderr)![0];
  }, 60_000);

  afterAll(async () => {
    if (server.exitCode === null) {
      server.kill('SIGTERM');
      await new Promise((resolve) => server.once('exit', resolve));
    }
    data.cleanup();
  });

  it('applies a policy edit, a scope edit and a token revocation made by the CLI within seconds', async () => {
    await cli('policy', 'set', '_default', '--host-timeout', '30', '--version-intensity', '3', '--silent-recheck', '2');
    const policyMs = await within(5000, async () => {
      const { policies } = (await api('/api/v1/admin/policies')) as {
        policies: Array<{ tag: string; silentRecheckCycles?: number; scan: { hostTimeoutSeconds: number; versionIntensity?: number } }>;
      };
      const def = policies.find((p) => p.tag === '')!;
      return def.scan.hostTimeoutSeconds === 30 && def.scan.versionIntensity === 3 && def.silentRecheckCycles === 2;
    });
    expect(policyMs).toBeLessThan(5000);

    await cli('scope', 'add', '198.18.9.0/30', '--tag', 'live');
    const { stdout: token } = await cli('token', 'create', '--agent', 'edge-1');
    const agentToken = token.trim();
    // The scope edit reaches the server within a sweep interval: poll for the first work item.
    type Item = { ip: string; tags: string[]; scan: { hostTimeoutSeconds: number } };
    const got: Item[] = [];
    await within(5000, async () => {
      const work = await fetch(`http://127.0.0.1:${port}/api/v1/agent/work`, { headers: { authorization: `Bearer ${agentToken}` } });
      expect(work.status).toBe(200);
      const next = ((await work.json()) as { work: Item | null }).work;
      if (next) got.push(next);
      return got.length > 0;
    });
    const item = got[0]!;
    expect(item.ip.startsWith('198.18.9.')).toBe(true);
    expect(item.tags).toEqual(['live']);
    expect(item.scan.hostTimeoutSeconds).toBe(30);

    const { stdout: list } = await cli('token', 'list');
    const id = /agent\t(\S+)\tedge-1/.exec(list)![1]!;
    await cli('token', 'revoke', id);
    await within(
      15_000,
      async () =>
        (await fetch(`http://127.0.0.1:${port}/api/v1/agent/work`, { headers: { authorization: `Bearer ${agentToken}` } })).status === 401,
    );
  }, 60_000);

  it('refuses to start a second server on a busy port with a clear message and no token created', async () => {
    const second = tempDataDir();
    try {
      const err = await run(process.execPath, [CLI, 'serve', '--port', String(port), '--data', second.dir]).then(
        () => '',
        (e: { stderr: string; code: number }) => `${e.code} ${e.stderr}`,
      );
      expect(err).toMatch(/already in use/);
      expect(err).not.toMatch(/pbk_/);
      expect(err).not.toMatch(/^\s+at /m);
    } finally {
      second.cleanup();
    }
  });
});
