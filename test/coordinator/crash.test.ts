import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openSqliteStore } from '../../src/store/sqlite-store.js';
import { databasePath } from '../../src/coordinator/app.js';
import type { WorkItem } from '../../src/protocol/protocol.js';
import { bearer, getWork, manualClock, openApp, resultFor, tempDataDir, tokens } from './helpers.js';

const FIXTURE = fileURLToPath(new URL('./fixtures/crash-server.ts', import.meta.url));

/** Start the fixture coordinator in a child process; resolves once it serves. */
function startChild(dir: string): Promise<{ child: ChildProcess; port: number; tokens: string[] }> {
  const child = spawn(process.execPath, ['--import', 'tsx', FIXTURE, dir], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`crash fixture exited early (${code})`)));
    createInterface({ input: child.stdout! }).once('line', (line) =>
      resolve({ child, ...(JSON.parse(line) as { port: number; tokens: string[] }) }),
    );
  });
}

async function call(
  port: number,
  token: string,
  method: 'GET' | 'POST',
  path: string,
  body?: unknown,
): Promise<{ status: number; json: unknown }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: res.status, json: await res.json() };
}

describe('group commit under a crash (SIGKILL of the coordinator process)', () => {
  let data: ReturnType<typeof tempDataDir>;
  let child: ChildProcess | undefined;
  beforeEach(() => {
    data = tempDataDir();
  });
  afterEach(() => {
    if (child && child.exitCode === null) child.kill('SIGKILL');
    data.cleanup();
  });

  it('loses no acknowledged result and skips no target of the cycle', async () => {
    const started = await startChild(data.dir);
    child = started.child;
    child.removeAllListeners('exit');
    const handed = new Set<string>();
    const acked: string[] = [];
    let killed = false;
    // 32 agents in parallel: getwork -> submit, so writes group into shared transactions; the
    // process is killed while requests of the next round are in flight.
    const loops = started.tokens.map(async (token, i) => {
      for (let round = 0; !killed; round++) {
        let work: WorkItem | null;
        try {
          const res = await call(started.port, token, 'GET', '/api/v1/agent/work');
          work = (res.json as { work: WorkItem | null }).work;
        } catch {
          return; // connection reset by the kill
        }
        if (!work) return;
        if (work.reason === 'cycle' && work.cycle === 1) handed.add(work.ip);
        try {
          const res = await call(started.port, token, 'POST', '/api/v1/agent/results', resultFor(work, work.ports.slice(0, 1), Date.now()));
          if (res.status === 200) acked.push(work.leaseId);
        } catch {
          return;
        }
        if (i === 0 && round === 0) setTimeout(() => ((killed = true), child!.kill('SIGKILL')), 40);
      }
    });
    await Promise.all(loops);
    await new Promise<void>((resolve) =>
      child!.exitCode !== null || child!.signalCode !== null ? resolve() : child!.once('exit', () => resolve()),
    );
    expect(child.signalCode).toBe('SIGKILL');
    expect(acked.length).toBeGreaterThan(0);

    // Every acknowledged result is in the store after the crash.
    const store = await openSqliteStore({ path: databasePath(data.dir) });
    for (const id of acked) expect(await store.getScan(id), `acknowledged result ${id}`).toBeDefined();
    await store.close();

    // The restarted coordinator hands out every address of cycle 1 not handed out before the crash.
    const clock = manualClock(Date.now());
    const app = await openApp(data.dir, clock.now);
    const t = await tokens(app);
    for (let i = 0; i < 200; i++) {
      const w = await getWork(app, t.agents[0]!);
      if (!w || w.cycle > 1) break;
      if (w.reason === 'cycle') handed.add(w.ip);
      const res = await app.inject({
        method: 'POST',
        url: '/api/v1/agent/results',
        headers: bearer(t.agents[0]!),
        payload: resultFor(w, [], clock.now()),
      });
      expect(res.statusCode).toBe(200);
    }
    await app.close();
    expect(handed.size).toBe(64);
  }, 60_000);
});
