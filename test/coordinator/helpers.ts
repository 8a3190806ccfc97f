import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { afterEach } from 'vitest';
import { buildApp, databasePath } from '../../src/coordinator/app.js';
import { openSqliteStore } from '../../src/store/sqlite-store.js';
import { resolveConfig, type ConfigInput } from '../../src/coordinator/config.js';
import { WORK_FEATURES_HEADER, type ResultSubmission, type WorkItem } from '../../src/protocol/protocol.js';

/** A temp data directory, removed by the returned cleanup. */
export function tempDataDir(): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'pb-coord-'));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A hand-moved clock. */
export function manualClock(start = Date.UTC(2026, 10, 23, 2, 0, 0)) {
  let t = start;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

/** A coordinator app over a real SQLite file in `dir`, no timers, quiet logs. */
export async function openApp(dir: string, now: () => number, flags: ConfigInput = {}): Promise<FastifyInstance> {
  const config = resolveConfig({ flags: { dataDir: dir, logLevel: 'silent', learnBatchSize: 4, ...flags }, env: {} });
  return buildApp({ config, now, sweepTimer: false });
}

/**
 * Coordinators on one PostgreSQL (`url`), each with a data directory of its own, as `portbandit
 * serve --postgres` runs them: `open(schema, now, flags)` makes one on `schema`. Every one is
 * closed, and its directory removed, after each test of the calling `describe`.
 */
export function postgresCoordinators(pg: {
  url(): string;
}): (schema: string, now: () => number, flags?: ConfigInput) => Promise<FastifyInstance> {
  const apps: FastifyInstance[] = [];
  const cleanups: (() => void)[] = [];
  afterEach(async () => {
    for (const app of apps.splice(0)) await app.close();
    for (const cleanup of cleanups.splice(0)) cleanup();
  });
  return async (schema, now, flags = {}) => {
    const data = tempDataDir();
    cleanups.push(data.cleanup);
    const app = await openApp(data.dir, now, { postgresUrl: pg.url(), postgresSchema: schema, ...flags });
    apps.push(app);
    return app;
  };
}

/**
 * openApp over a store opened here without the WAL checkpoint worker (`checkpointIntervalMs` 0:
 * SQLite's automatic checkpoints; same file, same schema), for a test that opens many short-lived
 * apps, such as a property's runs: the worker thread cost ~40 ms of CPU per app, and the apps close
 * long before its first pass. `close` closes the app, then the store.
 */
export async function openAppWithoutCheckpointWorker(
  dir: string,
  now: () => number,
  flags: ConfigInput = {},
): Promise<{ app: FastifyInstance; close(): Promise<void> }> {
  const config = resolveConfig({ flags: { dataDir: dir, logLevel: 'silent', learnBatchSize: 4, ...flags }, env: {} });
  const store = await openSqliteStore({ path: databasePath(dir), checkpointIntervalMs: 0 });
  try {
    const app = await buildApp({ config, now, sweepTimer: false, store });
    return {
      app,
      close: async () => {
        try {
          await app.close();
        } finally {
          await store.close();
        }
      },
    };
  } catch (error) {
    await store.close();
    throw error;
  }
}

export const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

/** Admin + agent tokens created through the core (as `portbandit token create` does). */
export async function tokens(app: FastifyInstance, agents = 1): Promise<{ admin: string; agents: string[]; agentIds: string[] }> {
  const admin = (await app.coordinator.createAdminToken('test-admin')).token;
  const made = [];
  for (let i = 0; i < agents; i++) made.push(await app.coordinator.createAgent(`agent-${i}`));
  return { admin, agents: made.map((a) => a.token), agentIds: made.map((a) => a.agent.id) };
}

export async function addScope(
  app: FastifyInstance,
  admin: string,
  entries: Array<{ range: string; tags?: string[] }>,
  list = 'scope',
): Promise<void> {
  const res = await app.inject({ method: 'POST', url: `/api/v1/admin/scope?list=${list}`, headers: bearer(admin), payload: { entries } });
  if (res.statusCode !== 200) throw new Error(`scope add failed: ${res.statusCode} ${res.body}`);
}

/** Lease up to `max` items as `token`, listing `features` in `Portbandit-Features` (absent: no header). */
export async function leaseItems(app: FastifyInstance, token: string, features?: string, max = 16): Promise<WorkItem[]> {
  const res = await app.inject({
    method: 'GET',
    url: `/api/v1/agent/work?max=${max}`,
    headers: { ...bearer(token), ...(features !== undefined ? { [WORK_FEATURES_HEADER]: features } : {}) },
  });
  if (res.statusCode !== 200) throw new Error(`GET /api/v1/agent/work: ${res.statusCode} ${res.body}`);
  const body = res.json() as { work: WorkItem | null; items?: WorkItem[] };
  return body.items ?? (body.work ? [body.work] : []);
}

export async function getWork(app: FastifyInstance, token: string): Promise<WorkItem | null> {
  const res = await app.inject({ method: 'GET', url: '/api/v1/agent/work', headers: bearer(token) });
  if (res.statusCode !== 200) throw new Error(`getwork failed: ${res.statusCode} ${res.body}`);
  return (res.json() as { work: WorkItem | null }).work;
}

/** A result for a work item: `open` ports (must be in the item) answered as http, the rest closed. */
export function resultFor(work: WorkItem, open: readonly number[], at: number): ResultSubmission {
  return {
    leaseId: work.leaseId,
    ip: work.ip,
    status: 'up',
    startedAt: at - 1000,
    finishedAt: at,
    preflight: 'connect',
    ports: open.map((port) => ({
      port,
      state: 'open' as const,
      service: 'http',
      product: 'nginx',
      version: '1.25',
      cpes: ['cpe:/a:nginx:nginx:1.25'],
      scripts: [{ id: 'http-title', output: 'Welcome' }],
    })),
    timings: { total: 1000 },
  };
}

/** The result of `work` from a host whose open ports are `openOf(ip)`: those of them the item names. */
export function resultAsHost(work: WorkItem, openOf: (ip: string) => readonly number[], at: number): ResultSubmission {
  const open = openOf(work.ip);
  return resultFor(
    work,
    work.ports.filter((p) => open.includes(p)),
    at,
  );
}

export async function submit(app: FastifyInstance, token: string, body: unknown): Promise<LightMyRequestResponse> {
  return app.inject({ method: 'POST', url: '/api/v1/agent/results', headers: bearer(token), payload: body as object });
}
