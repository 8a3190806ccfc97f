import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { WORK_FEATURE_SKIP_SILENT, type ResultSubmission, type WorkItem } from '../../src/protocol/index.js';
import type { ScanDocument } from '../../src/store/types.js';
import { addScope, bearer, leaseItems, manualClock, openApp, resultFor, submit, tempDataDir, tokens } from './helpers.js';

/**
 * `skipDetection` on work items (header feature skip-silent) and `silent` on result ports: a port
 * whose -sV got no answer within the time-out at a host's last visit is not put through -sV again
 * but in the cycles the policy's `silentRecheckCycles` names (default 4) and in manual rescans.
 * Real coordinator over SQLite, requests through inject; no scanner runs (the agent's side is
 * test/agent/streamed.test.ts, with real nmap).
 */
describe('ports silent at the last visit are not put through -sV again until a recheck', () => {
  let data: ReturnType<typeof tempDataDir>;
  let app: FastifyInstance;
  let t: Awaited<ReturnType<typeof tokens>>;
  const clock = manualClock();
  const QUIET = '198.18.22.1';
  const TALKS = '198.18.22.2';

  beforeEach(async () => {
    data = tempDataDir();
    app = await openApp(data.dir, clock.now);
    t = await tokens(app);
    await addScope(app, t.admin, [{ range: `${QUIET}-${TALKS}` }]);
    await policy({ strategy: 'fixed', params: { ports: [22, 5432] }, budget: 2, periodSeconds: null });
  });
  afterEach(async () => {
    await app.close();
    data.cleanup();
  });

  async function policy(body: Record<string, unknown>): Promise<{ statusCode: number; body: string }> {
    const res = await app.inject({ method: 'PUT', url: '/api/v1/admin/policies/_default', headers: bearer(t.admin), payload: body });
    return { statusCode: res.statusCode, body: res.body };
  }

  const lease = (features?: string, max = 16): Promise<WorkItem[]> => leaseItems(app, t.agents[0]!, features, max);

  /** What an agent reports: 22 answers -sV everywhere; 5432 is open on QUIET, silent unless `answers`. */
  function result(w: WorkItem, answers = false): ResultSubmission {
    const base = resultFor(w, [22], clock.now());
    if (w.ip !== QUIET) return base;
    const pg = answers
      ? { port: 5432, state: 'open' as const, service: 'postgresql', cpes: [], scripts: [] }
      : { port: 5432, state: 'open' as const, cpes: [], scripts: [], silent: true as const };
    return { ...base, ports: [...base.ports, pg] };
  }

  /** Lease the rest of the current cycle (or rescans), answer each item, and return what was handed out by address. */
  async function answerAll(answers = false): Promise<Map<string, WorkItem>> {
    const out = new Map<string, WorkItem>();
    for (const w of await lease(WORK_FEATURE_SKIP_SILENT)) {
      out.set(w.ip, w);
      clock.advance(100);
      const res = await submit(app, t.agents[0]!, result(w, answers));
      expect(res.statusCode, res.body).toBe(200);
    }
    await app.coordinator.learningSettled();
    return out;
  }

  async function nextCycle(): Promise<void> {
    const res = await app.inject({ method: 'POST', url: '/api/v1/admin/cycle/restart', headers: bearer(t.admin) });
    expect(res.statusCode, res.body).toBe(200);
  }

  const latest = async (ip: string): Promise<ScanDocument> =>
    (await app.inject({ method: 'GET', url: `/api/v1/hosts/${ip}`, headers: bearer(t.admin) })).json() as ScanDocument;

  const cycleOf = async (): Promise<number> =>
    ((await app.inject({ method: 'GET', url: '/api/v1/admin/cycle', headers: bearer(t.admin) })).json() as { cycle: number }).cycle;

  it('names them on the next cycles, not in recheck cycles or rescans, only to an agent that asks', async () => {
    // Cycle 1: nothing known; an agent that asks gets the field, empty.
    const first = await answerAll();
    expect(await cycleOf()).toBe(1);
    expect([...first.values()].map((w) => w.skipDetection)).toEqual([[], []]);
    const stored = await latest(QUIET);
    expect(stored.ports.map((p) => [p.port, p.silent ?? false])).toEqual([
      [22, false],
      [5432, true],
    ]);

    // Cycle 2: QUIET's 5432 is skipped.
    await nextCycle();
    const second = await answerAll();
    expect(await cycleOf()).toBe(2);
    expect(second.get(QUIET)?.skipDetection).toEqual([5432]);
    expect(second.get(TALKS)?.skipDetection).toEqual([]);

    // A manual rescan looks again: nothing skipped. This time 5432 answers -sV.
    const rescan = await app.inject({ method: 'POST', url: '/api/v1/admin/rescan', headers: bearer(t.admin), payload: { ips: [QUIET] } });
    expect(rescan.statusCode, rescan.body).toBe(200);
    const manual = await answerAll(true);
    expect(manual.get(QUIET)?.reason).toBe('manual');
    expect(manual.get(QUIET)?.skipDetection).toEqual([]);
    expect((await latest(QUIET)).ports.find((p) => p.port === 5432)).toMatchObject({ service: 'postgresql' });
    expect((await latest(QUIET)).ports.find((p) => p.port === 5432)?.silent).toBeUndefined();

    // Cycle 3: the latest visit had an answer on 5432, so nothing is skipped; it goes silent again.
    await nextCycle();
    expect((await answerAll()).get(QUIET)?.skipDetection).toEqual([]);
    // Cycle 4 is a recheck cycle (a multiple of the default 4): nothing skipped.
    await nextCycle();
    const fourth = await answerAll();
    expect(await cycleOf()).toBe(4);
    expect(fourth.get(QUIET)?.skipDetection).toEqual([]);
    // Cycle 5 skips again; with silentRecheckCycles 1, cycle 6 does not.
    await nextCycle();
    expect((await answerAll()).get(QUIET)?.skipDetection).toEqual([5432]);
    const set = await policy({ strategy: 'fixed', params: { ports: [22, 5432] }, budget: 2, periodSeconds: null, silentRecheckCycles: 1 });
    expect(set.statusCode, set.body).toBe(200);
    await nextCycle();
    expect((await answerAll()).get(QUIET)?.skipDetection).toEqual([]);
    // An agent that does not list the feature never sees the field (its schema would refuse the item).
    await policy({ strategy: 'fixed', params: { ports: [22, 5432] }, budget: 2, periodSeconds: null });
    await nextCycle();
    expect(await cycleOf()).toBe(7);
    const older = await lease(undefined);
    expect(older.map((w) => w.ip).sort()).toEqual([QUIET, TALKS]);
    for (const w of older) expect('skipDetection' in w, w.ip).toBe(false);
  });

  it('refuses a silentRecheckCycles that is not a whole number of cycles, naming it', async () => {
    for (const value of [0, 1.5, 'four']) {
      const res = await policy({ strategy: 'fixed', params: { ports: [22] }, budget: 1, silentRecheckCycles: value });
      expect(res.statusCode, res.body).toBe(400);
      expect(res.body).toMatch(/silentRecheckCycles/);
    }
  });
});
