import { chmodSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';
import { Agent, request } from 'node:http';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { PerformanceObserver, monitorEventLoopDelay } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { cidrBounds, parseCidr } from '../src/core/address.js';
import { createRng } from '../src/core/rng.js';

/**
 * Coordinator load: N concurrent simulated agents (default 1,000) against the real coordinator
 * (fastify + SQLite in a temp data dir) on 127.0.0.1, each looping getwork -> submit, next to an
 * empty fastify route measured the same way in the same run. Servers run in a worker thread so
 * the load generator does not share their event loop. Loopback only; bounded in time and count.
 *
 * Each server is warmed up for up to 2 s first (not measured; the coordinator with getwork, so
 * every agent has its connection open and the code is compiled). Then four
 * phases: getwork alone, and three regimes of getwork -> submit:
 * closed loop (no pause between requests: throughput, and latency that is mostly
 * queueing, since 1,000 requests are always in flight), paced (each agent "scans" between
 * requests, offering half the measured capacity: the latency an agent sees under heavy load),
 * and the fleet pace (1,000 agents that each spend ~5 s per host: 200 pairs/s). The rate goal
 * (getwork >= 50% of the empty route) is judged on getwork alone; in the closed loop getwork's
 * rate is the pair rate, printed as well. The load generator's own event-loop delay is printed
 * with the paced phases: on a 2-core machine its lag is part of every latency it measures.
 *
 * For each phase the server's thread also reports what it saw (so a client-side or machine-load
 * tail can be told from the server's): event-loop delay, GC pauses, time inside the server per
 * route; and the load average is printed, since other jobs on the machine move every figure.
 *
 * Then CPU time per request, which a loaded machine disturbs far less than rates and latencies:
 * process.cpuUsage around a fixed number of in-process requests (fastify inject, no sockets, 50 in
 * flight) to the empty route, to getwork+submit pairs, and to getwork alone.
 *
 * Then batched work (runBatchedPhases): leases of up to 64 hosts per request and results in
 * batches; host visits per second in a closed loop and the lease request's latency at half that
 * load, in four deployments, each on a fresh store: one coordinator on SQLite (`batched`), the same
 * with the store's writes on a worker thread of their own (`thread`, serve --sqlite-writer thread), one
 * coordinator on PostgreSQL (`pg1`), and two coordinators on one PostgreSQL with the agents split
 * between them (`pg2`). PostgreSQL is a throwaway local cluster (scripts/pg-throwaway.sh: fsync off,
 * loopback, stopped and deleted after) unless PB_BENCH_POSTGRES_URL names a server (each phase then
 * gets its own schema, dropped after); without PostgreSQL binaries the pg phases say so and are
 * skipped. The CPU of PostgreSQL's own processes per visit is printed next to the process's.
 *
 * Env: PB_BENCH_COORD_PHASES (`single,batched,thread,pg1,pg2`: which coordinator phases run; the empty
 * route always does, unless the list holds only `cpu` and `cpu-pg`: then only measureBatchedCpu
 * runs, on SQLite and/or on PostgreSQL (with the cluster's own CPU per visit; `batched` runs the
 * SQLite one too), PB_BENCH_POSTGRES_URL (see above), PB_BENCH_COORD_BATCH (64, hosts per lease request, at most 256),
 * PB_BENCH_COORD_BATCH_PACED_VISITS (host visits/s offered in the batched paced phase; default
 * half the batched closed loop's), PB_BENCH_COORD_AGENTS (1000), PB_BENCH_COORD_SECONDS per phase (8), PB_BENCH_COORD_MAX
 * requests per phase (200000), PB_BENCH_COORD_STRATEGY of the default policy (adaptive; `fixed`
 * = Natlas's list, which isolates the coordinator's own cost from the strategy's),
 * PB_BENCH_COORD_CPU_REQUESTS per CPU measurement (2000), PB_BENCH_COORD_CPU_ROUNDS of the batched one
 * (over the /15, first visits, then over a /21, revisits; PB_BENCH_COORD_CPU_SCOPE: one block inside 198.18.0.0/15 instead)
 * (8; after the SQLite batched phases, measureBatchedCpu: CPU per host visit in process), PB_BENCH_COORD_LOG (the coordinators' log
 * level, default silent; `error` shows what an error answer was), PB_BENCH_COORD_POOL (PostgreSQL connections per coordinator, 50), PB_BENCH_COORD_PACED_PAIRS offered
 * in the paced phase (default half the closed loop's pair rate), PB_BENCH_COORD_FLEET_PAIRS
 * offered at the fleet pace (200).
 */

/**
 * PostgreSQL connections per benchmarked coordinator (PB_BENCH_COORD_POOL, default 50): with the
 * coordinator's default of 10, 1,000 agents in a closed loop wait past the pool's 10 s for a
 * connection, and the bench measures that queue instead of the store (two coordinators: 100 of
 * the throwaway cluster's 200 connections).
 */
function benchPoolSize(): number {
  const n = Number(process.env.PB_BENCH_COORD_POOL ?? 50);
  if (!Number.isInteger(n) || n < 2 || n > 1000)
    throw new Error(`PB_BENCH_COORD_POOL: expected an integer 2-1000, got ${process.env.PB_BENCH_COORD_POOL}`);
  return n;
}

interface ServerReady {
  readonly port: number;
  readonly tokens: readonly string[];
}

/** What the server's thread saw during a phase: its event loop's delays, route latencies, CPU. */
interface ServerStats {
  /** Event-loop delay (perf_hooks.monitorEventLoopDelay, 1 ms resolution), ms. */
  readonly loopDelay: { p50: number; p99: number; max: number };
  /** Time inside the server per route (onRequest to onResponse), ms. */
  readonly routes: Record<string, { count: number; p50: number; p99: number; max: number }>;
  /** CPU time of the whole process during the phase (both threads), s. */
  readonly cpuSeconds: number;
  /** Garbage-collection pauses of the server's thread: total and longest, ms. */
  readonly gc: { count: number; totalMs: number; maxMs: number };
}

type WorkerKind =
  | {
      kind: 'pb-bench-coordinator';
      agents: number;
      dataDir: string;
      strategy: string;
      scope?: string;
      unpaced?: boolean;
      /** A PostgreSQL store (`serve --postgres`): its URL and schema. */
      postgres?: { url: string; schema: string };
      /** Another coordinator on the same PostgreSQL has set it up (scope, policy, agents): these are its agents' tokens. */
      joinWith?: readonly string[];
      /** The coordinator's log level (PB_BENCH_COORD_LOG; silent by default): `error` shows what a 500 was. */
      logLevel?: string;
      /** `thread`: the SQLite store's writes on a worker thread of their own (serve --sqlite-writer thread). */
      sqliteWriter?: 'thread';
    }
  | { kind: 'pb-bench-empty' };
type WorkerCommand = 'close' | 'stats-reset' | 'stats';

/** Collects ServerStats in the server's thread; answers 'stats-reset', 'stats' and 'close' from the load generator. */
function serveCommands(app: FastifyInstance): void {
  const loop = monitorEventLoopDelay({ resolution: 1 });
  loop.enable();
  let routes = new Map<string, number[]>();
  let cpu = process.cpuUsage();
  let gc = { count: 0, totalMs: 0, maxMs: 0 };
  new PerformanceObserver((list) => {
    for (const entry of list.getEntries())
      gc = { count: gc.count + 1, totalMs: gc.totalMs + entry.duration, maxMs: Math.max(gc.maxMs, entry.duration) };
  }).observe({ entryTypes: ['gc'] });
  app.addHook('onResponse', async (req, reply) => {
    const url = req.routeOptions.url ?? 'other';
    let list = routes.get(url);
    if (!list) routes.set(url, (list = []));
    list.push(reply.elapsedTime);
  });
  parentPort!.on('message', (command: WorkerCommand) => {
    if (command === 'close') void app.close().then(() => parentPort!.postMessage('closed'));
    else if (command === 'stats-reset') {
      loop.reset();
      routes = new Map();
      cpu = process.cpuUsage();
      gc = { count: 0, totalMs: 0, maxMs: 0 };
      parentPort!.postMessage('reset');
    } else {
      const used = process.cpuUsage(cpu);
      const stats: ServerStats = {
        loopDelay: { p50: loop.percentile(50) / 1e6, p99: loop.percentile(99) / 1e6, max: loop.max / 1e6 },
        routes: Object.fromEntries(
          [...routes].map(([url, list]) => {
            const sorted = Float64Array.from(list).sort();
            return [url, { count: sorted.length, p50: quantile(sorted, 0.5), p99: quantile(sorted, 0.99), max: sorted.at(-1) ?? NaN }];
          }),
        ),
        cpuSeconds: (used.user + used.system) / 1e6,
        gc,
      };
      parentPort!.postMessage(stats);
    }
  });
}

async function runServerInWorker(data: WorkerKind): Promise<void> {
  const { default: Fastify } = await import('fastify');
  if (data.kind === 'pb-bench-empty') {
    const app = Fastify({ logger: false });
    app.get('/empty', { schema: { response: { 200: { type: 'object', properties: { ok: { type: 'boolean' } } } } } }, async () => ({
      ok: true,
    }));
    serveCommands(app);
    await app.listen({ host: '127.0.0.1', port: 0 });
    parentPort!.postMessage({ port: (app.server.address() as { port: number }).port, tokens: [] } satisfies ServerReady);
    return;
  }
  const { buildApp, resolveConfig } = await import('../src/coordinator/index.js');
  const pgFlags = data.postgres
    ? { postgresUrl: data.postgres.url, postgresSchema: data.postgres.schema, postgresPool: benchPoolSize() }
    : {};
  const config = resolveConfig({
    flags: {
      dataDir: data.dataDir,
      logLevel: data.logLevel ?? 'silent',
      port: 0,
      authFailuresPerMinute: 1_000_000,
      ...pgFlags,
      ...(data.sqliteWriter ? { sqliteWriter: data.sqliteWriter } : {}),
    },
    env: {},
  });
  const app = await buildApp({ config });
  if (data.joinWith) {
    // A second coordinator on the same PostgreSQL: the first one's scope, policy and agents.
    serveCommands(app);
    await app.listen({ host: '127.0.0.1', port: 0 });
    parentPort!.postMessage({ port: (app.server.address() as { port: number }).port, tokens: [...data.joinWith] } satisfies ServerReady);
    return;
  }
  const c = app.coordinator;
  await c.createAdminToken('bench');
  await c.addScope('scope', [{ range: data.scope ?? '198.18.0.0/16', tags: ['bench'] }]);
  // Unpaced: a finished cycle starts the next at once (a long run never runs out of hosts).
  await c.setPolicy('', { strategy: data.strategy, budget: 100, ...(data.unpaced ? { periodSeconds: null } : {}) });
  const tokens: string[] = [];
  for (let i = 0; i < data.agents; i++) tokens.push((await c.createAgent(`bench-${i}`)).token);
  serveCommands(app);
  await app.listen({ host: '127.0.0.1', port: 0 });
  parentPort!.postMessage({ port: (app.server.address() as { port: number }).port, tokens } satisfies ServerReady);
}

if (!isMainThread && (workerData as WorkerKind | undefined)?.kind?.startsWith('pb-bench-')) {
  await runServerInWorker(workerData as WorkerKind);
}

interface ServerWorker {
  readonly ready: ServerReady;
  /** Ask the server's thread something ('stats-reset' answers 'reset', 'stats' a ServerStats). */
  ask<T>(command: 'stats-reset' | 'stats'): Promise<T>;
  stop(): Promise<void>;
}

function startWorker(data: WorkerKind): Promise<ServerWorker> {
  // Run from source (npx tsx), Node 20's workers inherit neither the loader nor `--import tsx`:
  // register tsx inside the worker before importing this file.
  const worker = import.meta.url.endsWith('.ts')
    ? new Worker(
        `import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))}).then((m) => { m.register(); return import(${JSON.stringify(import.meta.url)}); })`,
        { eval: true, workerData: data },
      )
    : new Worker(new URL(import.meta.url), { workerData: data });
  const ask = <T>(command: WorkerCommand): Promise<T> =>
    new Promise<T>((resolve) => {
      worker.once('message', (answer: T) => resolve(answer));
      worker.postMessage(command);
    });
  return new Promise((resolve, reject) => {
    worker.once('error', reject);
    worker.once('message', (ready: ServerReady) =>
      resolve({
        ready,
        ask,
        stop: async () => {
          await ask<'closed'>('close');
          await worker.terminate();
        },
      }),
    );
  });
}

interface Response {
  readonly status: number;
  readonly body: string;
}

/**
 * One request. A kept-alive socket the server closed while idle (Node's keepAliveTimeout, 5 s,
 * shorter than a paced agent's pause) can be reset just as it is reused: that request is sent
 * again once on a new socket, as Node's documentation advises (the agent routes are idempotent:
 * a result sent twice is answered as a duplicate).
 */
async function send(
  agent: Agent,
  port: number,
  method: 'GET' | 'POST',
  path: string,
  token: string | undefined,
  body?: string,
): Promise<Response> {
  try {
    try {
      return await sendOnce(agent, port, method, path, token, body);
    } catch (error) {
      if ((error as { reusedSocket?: boolean; code?: string }).reusedSocket && (error as { code?: string }).code === 'ECONNRESET')
        return await sendOnce(agent, port, method, path, token, body);
      throw error;
    }
  } catch (error) {
    // A connection the server reset or refused is an error answer (status 0, counted and shown
    // with the phase's errors), not the end of the run.
    const e = error as { code?: string; message?: string };
    return { status: 0, body: `connection error ${e.code ?? ''} ${e.message ?? String(error)}`.trim() };
  }
}

function sendOnce(
  agent: Agent,
  port: number,
  method: 'GET' | 'POST',
  path: string,
  token: string | undefined,
  body?: string,
): Promise<Response> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = {};
    if (token) headers.authorization = `Bearer ${token}`;
    if (body !== undefined) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = String(Buffer.byteLength(body));
    }
    const req = request({ host: '127.0.0.1', port, method, path, agent, headers }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      res.on('error', reject);
    });
    req.on('error', (error) => reject(Object.assign(error, { reusedSocket: req.reusedSocket })));
    req.end(body);
  });
}

function quantile(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

class Tally {
  private readonly samples: number[] = [];
  errors = 0;
  /** The first error answer (status and start of the body), to say what the errors were. */
  firstError: string | undefined;
  fail(res: Response): void {
    this.errors++;
    this.firstError ??= `${res.status} ${res.body.slice(0, 200)}`;
  }
  add(ms: number): void {
    this.samples.push(ms);
  }
  get count(): number {
    return this.samples.length;
  }
  summary(seconds: number): { perSecond: number; p50: number; p99: number; count: number } {
    const s = Float64Array.from(this.samples).sort();
    return { perSecond: this.count / seconds, p50: quantile(s, 0.5), p99: quantile(s, 0.99), count: this.count };
  }
}

/** Run `loops` concurrent loops of `step` until the deadline or the request cap. */
/** A simulated agent's result for a work item: its first port open as nginx, or nothing open. */
function resultBody(item: { leaseId: string; ip: string; ports: number[] }, firstOpen: boolean): string {
  const now = Date.now();
  return JSON.stringify({
    leaseId: item.leaseId,
    ip: item.ip,
    status: 'up',
    startedAt: now - 1000,
    finishedAt: now,
    preflight: 'connect',
    ports: firstOpen
      ? item.ports
          .slice(0, 1)
          .map((port) => ({ port, state: 'open', service: 'http', product: 'nginx', version: '1.25', cpes: [], scripts: [] }))
      : [],
    timings: { total: 1000 },
  });
}

async function drive(loops: number, seconds: number, maxRequests: number, step: (i: number) => Promise<number>): Promise<number> {
  const started = performance.now();
  const deadline = started + seconds * 1000;
  let requests = 0;
  await Promise.all(
    Array.from({ length: loops }, async (_, i) => {
      while (performance.now() < deadline && requests < maxRequests) requests += await step(i);
    }),
  );
  return (performance.now() - started) / 1000;
}

const fmt = (n: number, d = 1) => (Number.isFinite(n) ? n.toFixed(d) : 'n/a');

/** CPU microseconds (user + system, whole process) per call of `step`, `inFlight` at a time. */
async function cpuPerCall(count: number, inFlight: number, step: (i: number) => Promise<unknown>): Promise<number> {
  const before = process.cpuUsage();
  await Promise.all(
    Array.from({ length: inFlight }, async (_, k) => {
      for (let i = k; i < count; i += inFlight) await step(i);
    }),
  );
  const used = process.cpuUsage(before);
  return (used.user + used.system) / count;
}

/** CPU time per request in process (see the file comment); prints one block of figures. */
async function measureCpu(count: number, strategy: string): Promise<void> {
  const { default: Fastify } = await import('fastify');
  const { buildApp, resolveConfig } = await import('../src/coordinator/index.js');
  const dataDir = mkdtempSync(join(tmpdir(), 'pb-bench-coord-cpu-'));
  const empty = Fastify({ logger: false });
  empty.get('/empty', { schema: { response: { 200: { type: 'object', properties: { ok: { type: 'boolean' } } } } } }, async () => ({
    ok: true,
  }));
  const config = resolveConfig({ flags: { dataDir, logLevel: 'silent', port: 0, authFailuresPerMinute: 1_000_000 }, env: {} });
  const app = await buildApp({ config });
  try {
    const c = app.coordinator;
    await c.addScope('scope', [{ range: '198.18.0.0/16', tags: ['bench'] }]);
    await c.setPolicy('', { strategy, budget: 100 });
    const tokens: string[] = [];
    for (let i = 0; i < 100; i++) tokens.push((await c.createAgent(`cpu-${i}`)).token);
    await Promise.all([empty.ready(), app.ready()]);
    const getwork = async (i: number) => {
      const res = await app.inject({
        method: 'GET',
        url: '/api/v1/agent/work?version=bench',
        headers: { authorization: `Bearer ${tokens[i % tokens.length]}` },
      });
      return (JSON.parse(res.body) as { work: { leaseId: string; ip: string; ports: number[] } | null }).work;
    };
    const pair = async (i: number) => {
      const item = await getwork(i);
      if (!item) return;
      const payload = resultBody(item, true);
      const res = await app.inject({
        method: 'POST',
        url: '/api/v1/agent/results',
        headers: { authorization: `Bearer ${tokens[i % tokens.length]}`, 'content-type': 'application/json' },
        payload,
      });
      if (res.statusCode !== 200) throw new Error(`submit failed in the CPU measurement: ${res.statusCode} ${res.body}`);
    };
    const hitEmpty = () => empty.inject({ method: 'GET', url: '/empty' });
    // Warm-up: JIT, page cache, the strategy's first batches.
    await cpuPerCall(Math.min(count, 500), 50, hitEmpty);
    await cpuPerCall(Math.min(count, 500), 50, pair);
    const emptyUs = await cpuPerCall(count, 50, hitEmpty);
    const pairUs = await cpuPerCall(count, 50, pair);
    const workUs = await cpuPerCall(count, 50, getwork);
    console.log(`CPU per request, in process (fastify inject, 50 in flight, ${count} requests each; user+system of the whole process):`);
    console.log(
      `  empty route ${fmt(emptyUs, 0)} us; getwork ${fmt(workUs, 0)} us; getwork+submit pair ${fmt(pairUs, 0)} us (submit ~${fmt(pairUs - workUs, 0)} us)`,
    );
    console.log(
      `  ratio empty / getwork ${fmt(emptyUs / workUs, 3)}; empty / pair ${fmt(emptyUs / pairUs, 3)} (a pair-rate ceiling relative to the empty route's)`,
    );
  } finally {
    await app.close();
    await empty.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

/**
 * CPU time per host visit of the batched path, in process (fastify inject, no sockets, no load
 * generator): `agents` agents each lease 64 (`GET /api/v1/agent/work?max=64`) and submit them in
 * one `POST /api/v1/agent/results/batch`, all at once, `rounds` times after 3 rounds of warm-up;
 * the leases' and the submits' CPU apart, next to the empty route's CPU per request in the same
 * process. A loaded machine disturbs this far less than rates and latencies: it is the figure to
 * compare builds with (docs/coordinator.md, batched work).
 */
async function measureBatchedCpu(rounds: number, agents: number, strategy: string, postgres?: BenchPostgres): Promise<void> {
  for (const scope of cpuScopes(process.env)) await measureBatchedCpuOver(scope, rounds, agents, strategy, postgres);
}

async function measureBatchedCpuOver(
  scope: string,
  rounds: number,
  agents: number,
  strategy: string,
  postgres?: BenchPostgres,
): Promise<void> {
  const { default: Fastify } = await import('fastify');
  const { buildApp, resolveConfig } = await import('../src/coordinator/index.js');
  const dataDir = mkdtempSync(join(tmpdir(), 'pb-bench-coord-bcpu-'));
  const empty = Fastify({ logger: false });
  empty.get('/empty', { schema: { response: { 200: { type: 'object', properties: { ok: { type: 'boolean' } } } } } }, async () => ({
    ok: true,
  }));
  const pgFlags = postgres ? { postgresUrl: postgres.url, postgresSchema: postgres.schema('bcpu'), postgresPool: benchPoolSize() } : {};
  const config = resolveConfig({ flags: { dataDir, logLevel: 'silent', port: 0, authFailuresPerMinute: 1_000_000, ...pgFlags }, env: {} });
  const app = await buildApp({ config });
  const databaseCpu = postgres?.dataDir !== undefined ? () => postgresCpuSeconds(postgres.dataDir!) : undefined;
  try {
    const c = app.coordinator;
    await c.addScope('scope', [{ range: scope, tags: ['bench'] }]);
    await c.setPolicy('', { strategy, budget: 100, periodSeconds: null });
    const tokens: string[] = [];
    for (let i = 0; i < agents; i++) tokens.push((await c.createAgent(`bcpu-${i}`)).token);
    await Promise.all([empty.ready(), app.ready()]);
    type Item = { leaseId: string; ip: string; ports: number[] };
    let visits = 0;
    let leaseUs = 0;
    let submitUs = 0;
    const round = async () => {
      let before = process.cpuUsage();
      let leased: Item[][] = [];
      for (let attempt = 0; ; attempt++) {
        before = process.cpuUsage();
        leased = await Promise.all(
          tokens.map(async (token) => {
            const res = await app.inject({
              method: 'GET',
              url: '/api/v1/agent/work?version=bench&max=64',
              headers: { authorization: `Bearer ${token}` },
            });
            return (JSON.parse(res.body) as { items?: Item[] }).items ?? [];
          }),
        );
        // A small scope's finished cycle starts the next once no visit is in flight, and the
        // coordinator asks the store that at most once a second: wait for it (not counted).
        if (leased.some((items) => items.length > 0) || attempt === 5) break;
        await sleep(1100);
      }
      let used = process.cpuUsage(before);
      leaseUs += used.user + used.system;
      before = process.cpuUsage();
      await Promise.all(
        leased.map(async (items, i) => {
          if (items.length === 0) return;
          const res = await app.inject({
            method: 'POST',
            url: '/api/v1/agent/results/batch',
            headers: { authorization: `Bearer ${tokens[i]}`, 'content-type': 'application/json' },
            payload: `{"results":[${items.map((item) => resultBody(item, true)).join(',')}]}`,
          });
          if (res.statusCode !== 200) throw new Error(`batch submit failed in the CPU measurement: ${res.statusCode} ${res.body}`);
          visits += (JSON.parse(res.body) as { results: Array<{ outcome: string }> }).results.filter(
            (r) => r.outcome === 'accepted',
          ).length;
        }),
      );
      used = process.cpuUsage(before);
      submitUs += used.user + used.system;
    };
    for (let k = 0; k < 3; k++) await round();
    await cpuPerCall(2000, 50, () => empty.inject({ method: 'GET', url: '/empty' }));
    const emptyUs = await cpuPerCall(5000, 50, () => empty.inject({ method: 'GET', url: '/empty' }));
    // A scope smaller than what the warm-up rounds leased is visited again in the measured
    // rounds: each host's latest scan is then replaced (the steady state of a running deployment),
    // not written for the first time.
    const revisits = Number(cidrBounds(parseCidr(scope)).end - cidrBounds(parseCidr(scope)).start + 1n) <= visits;
    visits = leaseUs = submitUs = 0;
    const databaseBefore = databaseCpu?.();
    for (let k = 0; k < rounds; k++) await round();
    const perVisit = (leaseUs + submitUs) / Math.max(1, visits);
    console.log(
      `CPU per host visit, batched, in process, ${postgres ? 'PostgreSQL' : 'SQLite'} (fastify inject, ${agents} agents leasing 64 and submitting them in one batch, ${rounds} rounds, ${visits} visits over ${scope}${revisits ? ', revisits' : ', first visits'}; user+system of the whole process):`,
    );
    if (databaseCpu && databaseBefore !== undefined)
      console.log(
        `  PostgreSQL's own processes: ${fmt(((databaseCpu() - databaseBefore) * 1e6) / Math.max(1, visits), 0)} us CPU per visit`,
      );
    console.log(
      `  ${fmt(perVisit, 0)} us per visit (lease ${fmt(leaseUs / Math.max(1, visits), 0)} + submit ${fmt(submitUs / Math.max(1, visits), 0)}); empty route ${fmt(emptyUs, 0)} us per request, so ${fmt(emptyUs / perVisit, 3)} visits per empty-route request` +
        '; 5,000 visits/s on 2 whole cores is 400 us of CPU per visit for everything (server, client, checkpoints)',
    );
  } finally {
    await app.close();
    await empty.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

/**
 * The scopes of the in-process CPU measurement: by default the batched phases' /15, where every
 * measured visit is a host's first, then a /21, visited again within the warm-up, so its measured
 * visits replace each host's latest scan (a running deployment's steady state).
 * PB_BENCH_COORD_CPU_SCOPE names one block instead. Only blocks inside 198.18.0.0/15: nothing is
 * scanned, but no other address goes into a bench's scope.
 */
function cpuScopes(env: NodeJS.ProcessEnv): string[] {
  const text = env.PB_BENCH_COORD_CPU_SCOPE;
  if (text === undefined) return [BATCHED_SCOPE, REVISIT_SCOPE];
  const bench = cidrBounds(parseCidr(BATCHED_SCOPE));
  const cidr = parseCidr(text, 'PB_BENCH_COORD_CPU_SCOPE');
  const { start, end } = cidrBounds(cidr);
  if (cidr.family !== 4 || start < bench.start || end > bench.end)
    throw new Error(`PB_BENCH_COORD_CPU_SCOPE: expected a block inside ${BATCHED_SCOPE}, got ${text}`);
  return [text];
}

/** One line of what the server's thread saw during a phase. */
function printServer(label: string, stats: ServerStats, requests: number, unit = 'request'): void {
  const routes = Object.entries(stats.routes)
    .map(([url, r]) => `${url.replace('/api/v1/agent/', '')} p50 ${fmt(r.p50, 2)} p99 ${fmt(r.p99, 2)} max ${fmt(r.max, 1)} ms`)
    .join('; ');
  const loop = `loop delay p99 ${fmt(stats.loopDelay.p99, 1)} max ${fmt(stats.loopDelay.max, 1)} ms`;
  const gc = `GC ${fmt(stats.gc.totalMs, 0)} ms in ${stats.gc.count} pauses, longest ${fmt(stats.gc.maxMs, 1)} ms`;
  console.log(
    `  ${label.padEnd(15)} ${loop}; ${gc}; ${routes}; ${fmt((stats.cpuSeconds * 1e6) / Math.max(1, requests), 0)} us CPU/${unit}`,
  );
}

/** What the coordinator phases share: sizes, the empty route's figures, the load averages. */
interface PhaseContext {
  readonly agents: number;
  readonly seconds: number;
  readonly maxRequests: number;
  readonly strategy: string;
  readonly dataDir: string;
  readonly env: NodeJS.ProcessEnv;
  readonly e: ReturnType<Tally['summary']>;
  readonly emptyErrors: number;
  readonly emptyServer: ServerStats;
  readonly load: Record<string, number>;
}

/** One item per request: getwork alone, the closed loop, paced and fleet pace; then CPU per request. */
async function runSinglePhases({
  agents,
  seconds,
  maxRequests,
  strategy,
  dataDir,
  env,
  e,
  emptyErrors,
  emptyServer,
  load,
}: PhaseContext): Promise<void> {
  // 2. The coordinator: every agent loops getwork -> submit.
  const coordAgent = new Agent({ keepAlive: true, maxSockets: agents, maxFreeSockets: agents });
  const coord = await startWorker({ kind: 'pb-bench-coordinator', ...logLevelOf(process.env), agents, dataDir, strategy });

  type Item = { leaseId: string; ip: string; ports: number[] };
  /** One timed getwork of agent `i` into `tally`: its item (null: no work), or undefined on an error status. */
  const timedGetwork = async (i: number, tally: Tally): Promise<Item | null | undefined> => {
    const t0 = performance.now();
    const res = await send(coordAgent, coord.ready.port, 'GET', '/api/v1/agent/work?version=bench', coord.ready.tokens[i]!);
    if (res.status !== 200) {
      tally.errors++;
      return undefined;
    }
    tally.add(performance.now() - t0);
    return (JSON.parse(res.body) as { work: Item | null }).work;
  };

  // 2a. getwork alone: the work-request path by itself (a fleet that is busy scanning and not
  // submitting yet). The /16 scope holds more targets than this phase can lease.
  // Warm-up (not measured): a coordinator that has just started compiles its code and fills its
  // caches during its first second of load; a running one has long done so.
  await drive(agents, Math.min(2, seconds), Math.min(maxRequests, 10_000), async (i) => {
    await send(coordAgent, coord.ready.port, 'GET', '/api/v1/agent/work?version=bench', coord.ready.tokens[i]!);
    return 1;
  });
  const onlyWork = new Tally();
  let onlyNoWork = 0;
  await coord.ask('stats-reset');
  const onlyWorkSeconds = await drive(agents, Math.min(seconds, 5), Math.min(maxRequests, 40_000), async (i) => {
    if ((await timedGetwork(i, onlyWork)) === null) onlyNoWork++;
    return 1;
  });
  const onlyWorkServer = await coord.ask<ServerStats>('stats');
  await coord.ask('stats-reset');
  const work = new Tally();
  const submits = new Tally();
  let noWork = 0;
  const coordSeconds = await drive(agents, seconds, maxRequests, async (i) => {
    const token = coord.ready.tokens[i]!;
    const item = await timedGetwork(i, work);
    if (item === undefined) return 1;
    if (!item) {
      noWork++;
      return 1;
    }
    const body = resultBody(item, true);
    const t1 = performance.now();
    const sub = await send(coordAgent, coord.ready.port, 'POST', '/api/v1/agent/results', token, body);
    if (sub.status === 200) submits.add(performance.now() - t1);
    else submits.errors++;
    return 2;
  });
  const closedServer = await coord.ask<ServerStats>('stats');
  load.closed = loadavg()[0]!;
  await coord.ask('stats-reset');

  // 3. Paced: the same agents with a scan between getwork and submit, offering ~50% of capacity
  // (or PB_BENCH_COORD_PACED_PAIRS pairs per second, to compare builds at the same load); then
  // a fleet's pace: 1,000 agents that each take ~5 s per host offer 200 pairs/s
  // (PB_BENCH_COORD_FLEET_PAIRS).
  const pairRate = Math.max(1, submits.count / coordSeconds);
  const offeredPairs = env.PB_BENCH_COORD_PACED_PAIRS ? Number(env.PB_BENCH_COORD_PACED_PAIRS) : 0.5 * pairRate;
  const fleetPairs = Number(env.PB_BENCH_COORD_FLEET_PAIRS ?? 200);
  const rng = createRng('bench-coordinator');
  const runPaced = async (pairs: number, minSeconds = seconds) => {
    const thinkMs = (agents / pairs) * 1000;
    const work = new Tally();
    const submitted = new Tally();
    // The load generator's own event loop: its lag is in every latency it measures.
    const clientLoop = monitorEventLoopDelay({ resolution: 1 });
    clientLoop.enable();
    // Long enough for every agent to cycle twice, bounded; pauses never run past the deadline.
    const phase = Math.min(60, Math.max(minSeconds, (2 * thinkMs) / 1000));
    const deadline = performance.now() + phase * 1000;
    const pausedSleep = (ms: number) => sleep(Math.max(0, Math.min(ms, deadline - performance.now())));
    const pace = () => pausedSleep((thinkMs * (0.5 + rng.next())) / 2);
    const started = new Set<number>();
    const elapsed = await drive(agents, phase, maxRequests, async (i) => {
      if (!started.has(i)) {
        // Agents start spread over one think time, as a fleet that has been running a while.
        started.add(i);
        await pausedSleep(rng.next() * thinkMs);
        if (performance.now() >= deadline) return 0;
      }
      const token = coord.ready.tokens[i]!;
      const item = await timedGetwork(i, work);
      if (item === undefined) return 1;
      await pace();
      if (!item || performance.now() >= deadline) return 1;
      const body = resultBody(item, false);
      const t1 = performance.now();
      const sub = await send(coordAgent, coord.ready.port, 'POST', '/api/v1/agent/results', token, body);
      if (sub.status === 200) submitted.add(performance.now() - t1);
      else submitted.errors++;
      await pace();
      return 2;
    });
    clientLoop.disable();
    const server = await coord.ask<ServerStats>('stats');
    await coord.ask('stats-reset');
    return {
      pairs,
      thinkMs,
      work,
      submitted,
      elapsed,
      server,
      clientLoop: { p99: clientLoop.percentile(99) / 1e6, max: clientLoop.max / 1e6 },
    };
  };
  const paced = await runPaced(offeredPairs);
  load.paced = loadavg()[0]!;
  // 30 s: once per learned-state write (every 30 s), so that rare stall weighs what it does.
  const fleet = await runPaced(fleetPairs, Math.max(seconds, 30));
  load.fleet = loadavg()[0]!;
  await coord.stop();
  coordAgent.destroy();

  const w = work.summary(coordSeconds);
  const s = submits.summary(coordSeconds);
  console.log(
    `strategy ${strategy} (budget 100); agents (concurrent connections): ${agents}; ${seconds} s per phase (cap ${maxRequests} requests); server in a worker thread, client in the main thread, 127.0.0.1`,
  );
  console.log(
    `empty fastify route : ${fmt(e.perSecond, 0)} req/s  p50 ${fmt(e.p50, 2)} ms  p99 ${fmt(e.p99, 2)} ms  (${e.count} ok, ${emptyErrors} errors)`,
  );
  console.log(
    `getwork             : ${fmt(w.perSecond, 0)} req/s  p50 ${fmt(w.p50, 2)} ms  p99 ${fmt(w.p99, 2)} ms  (${w.count} ok, ${work.errors} errors, ${noWork} empty)`,
  );
  console.log(
    `submit              : ${fmt(s.perSecond, 0)} req/s  p50 ${fmt(s.p50, 2)} ms  p99 ${fmt(s.p99, 2)} ms  (${s.count} ok, ${submits.errors} errors)`,
  );
  const pacedLines = (label: string, run: typeof paced) => {
    const pw = run.work.summary(run.elapsed);
    const ps = run.submitted.summary(run.elapsed);
    console.log(
      `${label} (each agent pauses ~${fmt(run.thinkMs / 2000, 2)} s after each request, offering ${fmt(run.pairs, 0)} pairs/s, ${fmt((100 * run.pairs) / pairRate, 0)}% of the closed loop's rate):`,
    );
    console.log(
      `  getwork           : ${fmt(pw.perSecond, 0)} req/s  p50 ${fmt(pw.p50, 2)} ms  p99 ${fmt(pw.p99, 2)} ms  (${pw.count} ok, ${run.work.errors} errors)`,
    );
    console.log(
      `  submit            : ${fmt(ps.perSecond, 0)} req/s  p50 ${fmt(ps.p50, 2)} ms  p99 ${fmt(ps.p99, 2)} ms  (${ps.count} ok, ${run.submitted.errors} errors)`,
    );
    const inServer = run.server.routes['/api/v1/agent/work'];
    console.log(
      `  getwork p99 inside the server ${fmt(inServer?.p99 ?? NaN, 2)} ms; the load generator's own event-loop delay p99 ${fmt(run.clientLoop.p99, 1)} max ${fmt(run.clientLoop.max, 1)} ms`,
    );
    return pw;
  };
  const pw = pacedLines('paced', paced);
  const fw = pacedLines('fleet pace', fleet);
  const ow = onlyWork.summary(onlyWorkSeconds);
  console.log(
    `getwork alone       : ${fmt(ow.perSecond, 0)} req/s  p50 ${fmt(ow.p50, 2)} ms  p99 ${fmt(ow.p99, 2)} ms  (${ow.count} ok, ${onlyWork.errors} errors, ${onlyNoWork} empty); ratio to the empty route ${fmt(ow.perSecond / e.perSecond, 3)}`,
  );
  console.log(
    `getwork alone / empty route: ${fmt(ow.perSecond / e.perSecond, 3)} (goal >= 0.5: ${ow.perSecond / e.perSecond >= 0.5 ? 'met' : 'NOT met'}); closed loop, where every agent alternates getwork and submit so getwork's rate is the pair rate: getwork / empty ${fmt(w.perSecond / e.perSecond, 3)}, (getwork + submit) / empty ${fmt((w.perSecond + s.perSecond) / e.perSecond, 3)}`,
  );
  console.log(
    `getwork p99 (goal < 25 ms): at the fleet pace ${fmt(fw.p99, 2)} ms (${fw.p99 < 25 ? 'met' : 'NOT met'}); at 50% of capacity ${fmt(pw.p99, 2)} ms (${pw.p99 < 25 ? 'met' : 'NOT met'}); closed-loop p99 ${fmt(w.p99, 2)} ms is queueing behind ${agents} in-flight requests`,
  );
  console.log(
    'server side (event-loop delay of its thread; time inside the server per route; CPU of the process, server and client, per request):',
  );
  const server = printServer;
  server('empty', emptyServer, e.count);
  server('getwork alone', onlyWorkServer, ow.count);
  server('closed loop', closedServer, w.count + s.count);
  server('paced', paced.server, paced.work.count + paced.submitted.count);
  server('fleet pace', fleet.server, fleet.work.count + fleet.submitted.count);
  console.log(
    `load average (1 min, 2 cores shared): ${Object.entries(load)
      .map(([k, v]) => `${k} ${fmt(v, 2)}`)
      .join(', ')}`,
  );
  await measureCpu(Number(env.PB_BENCH_COORD_CPU_REQUESTS ?? 2000), strategy);
}

/**
 * Batched work (docs/api.md): every agent leases up to PB_BENCH_COORD_BATCH (64) hosts per
 * request (`GET /api/v1/agent/work?max=`) and submits their results in one
 * `POST /api/v1/agent/results/batch` per 64, against `deployment`'s coordinators (agent i talks
 * to coordinator i mod n). A fresh store over 198.18.0.0/15 with its cycle unpaced (a finished cycle starts the next at once: the run never runs out of hosts, and later
 * cycles revisit hosts that have a baseline). A closed loop (throughput in host visits/s; goal
 * >= 5,000), then paced at half of that (PB_BENCH_COORD_BATCH_PACED_VISITS to fix it): the latency
 * of a lease request an agent sees under load (goal p99 < 25 ms).
 */
async function runBatchedPhases(
  { agents, seconds, maxRequests, strategy, env, e, load }: PhaseContext,
  deployment: Deployment,
): Promise<void> {
  const batch = Math.min(256, Math.max(1, Math.floor(Number(env.PB_BENCH_COORD_BATCH ?? 64))));
  const { scope, coords, label } = deployment;
  const httpAgent = new Agent({ keepAlive: true, maxSockets: agents, maxFreeSockets: agents });
  // Agent i talks to coordinator i mod n (two coordinators: the agents split between them).
  const coordOf = (i: number) => coords[i % coords.length]!;
  const askAll = <T>(command: 'stats-reset' | 'stats') => Promise.all(coords.map((c) => c.ask<T>(command)));
  type Item = { leaseId: string; ip: string; ports: number[] };
  const leasePath = `/api/v1/agent/work?version=bench&max=${batch}`;
  /** One timed lease request of agent `i`: its items ([] = no work), or undefined on an error status. */
  const lease = async (i: number, tally: Tally): Promise<Item[] | undefined> => {
    const t0 = performance.now();
    const res = await send(httpAgent, coordOf(i).ready.port, 'GET', leasePath, coordOf(i).ready.tokens[i]!);
    if (res.status !== 200) {
      tally.fail(res);
      return undefined;
    }
    tally.add(performance.now() - t0);
    const body = JSON.parse(res.body) as { work: Item | null; items?: Item[] };
    return body.items ?? (body.work ? [body.work] : []);
  };
  /** Submit `items`' results in requests of at most 64 (timed into `tally`); the accepted count. */
  const submitAll = async (i: number, items: Item[], tally: Tally, firstOpen: boolean): Promise<{ accepted: number; requests: number }> => {
    let accepted = 0;
    let requests = 0;
    for (let k = 0; k < items.length; k += 64) {
      const body = `{"results":[${items
        .slice(k, k + 64)
        .map((item) => resultBody(item, firstOpen))
        .join(',')}]}`;
      const t0 = performance.now();
      const res = await send(httpAgent, coordOf(i).ready.port, 'POST', '/api/v1/agent/results/batch', coordOf(i).ready.tokens[i]!, body);
      requests++;
      if (res.status !== 200) {
        tally.fail(res);
        continue;
      }
      tally.add(performance.now() - t0);
      accepted += (JSON.parse(res.body) as { results: Array<{ outcome: string }> }).results.filter((r) => r.outcome === 'accepted').length;
    }
    return { accepted, requests };
  };
  try {
    // Warm-up (not measured): connections open, code compiled, the strategy's first batches.
    await drive(agents, Math.min(2, seconds), Math.min(maxRequests, 4_000), async (i) => {
      const items = await lease(i, new Tally());
      if (items && items.length > 0) await submitAll(i, items, new Tally(), true);
      return 2;
    });

    // Closed loop: every agent leases a batch, submits it at once, and leases again.
    await askAll('stats-reset');
    let dbCpu = deployment.databaseCpuSeconds?.() ?? 0;
    const leases = new Tally();
    const submits = new Tally();
    let visits = 0;
    let empty = 0;
    const closedSeconds = await drive(agents, seconds, maxRequests, async (i) => {
      const items = await lease(i, leases);
      if (items === undefined) return 1;
      if (items.length === 0) {
        empty++;
        return 1;
      }
      const done = await submitAll(i, items, submits, true);
      visits += done.accepted;
      return 1 + done.requests;
    });
    const closedServer = await askAll<ServerStats>('stats');
    const closedDbCpu = deployment.databaseCpuSeconds ? deployment.databaseCpuSeconds() - dbCpu : undefined;
    load[`${deployment.key}Closed`] = loadavg()[0]!;
    await askAll('stats-reset');
    dbCpu = deployment.databaseCpuSeconds?.() ?? 0;

    // Paced at half the closed loop's visits (or a fixed rate): each agent "scans" its batch
    // between the lease and the submit, and pauses before its next lease.
    const visitRate = Math.max(1, visits / closedSeconds);
    const offered = env.PB_BENCH_COORD_BATCH_PACED_VISITS ? Number(env.PB_BENCH_COORD_BATCH_PACED_VISITS) : 0.5 * visitRate;
    const cycleMs = ((agents * batch) / offered) * 1000;
    const rng = createRng('bench-coordinator-batched');
    const pacedLeases = new Tally();
    const pacedSubmits = new Tally();
    let pacedVisits = 0;
    const clientLoop = monitorEventLoopDelay({ resolution: 1 });
    clientLoop.enable();
    // Long enough for every agent to lease about twice, bounded.
    const phase = Math.min(60, Math.max(seconds, (2 * cycleMs) / 1000));
    const deadline = performance.now() + phase * 1000;
    const pausedSleep = (ms: number) => sleep(Math.max(0, Math.min(ms, deadline - performance.now())));
    const pace = () => pausedSleep((cycleMs * (0.5 + rng.next())) / 2);
    const started = new Set<number>();
    const pacedSeconds = await drive(agents, phase, maxRequests, async (i) => {
      if (!started.has(i)) {
        // Agents start spread over one cycle, as a fleet that has been running a while.
        started.add(i);
        await pausedSleep(rng.next() * cycleMs);
        if (performance.now() >= deadline) return 0;
      }
      const items = await lease(i, pacedLeases);
      if (items === undefined) return 1;
      await pace();
      if (items.length === 0 || performance.now() >= deadline) return 1;
      const done = await submitAll(i, items, pacedSubmits, false);
      pacedVisits += done.accepted;
      await pace();
      return 1 + done.requests;
    });
    clientLoop.disable();
    const pacedServer = await askAll<ServerStats>('stats');
    const pacedDbCpu = deployment.databaseCpuSeconds ? deployment.databaseCpuSeconds() - dbCpu : undefined;
    load[`${deployment.key}Paced`] = loadavg()[0]!;

    const l = leases.summary(closedSeconds);
    const s = submits.summary(closedSeconds);
    const pl = pacedLeases.summary(pacedSeconds);
    const ps = pacedSubmits.summary(pacedSeconds);
    console.log(
      `batched work, ${label}: leases of up to ${batch} (GET /api/v1/agent/work?max=${batch}), results in batches of up to 64 (POST /api/v1/agent/results/batch); fresh store over ${scope}, cycle unpaced; ${agents} agents${coords.length > 1 ? ` split between ${coords.length} coordinators` : ''}; strategy ${strategy} (budget 100)`,
    );
    console.log(
      `  closed loop     : ${fmt(visitRate, 0)} host visits/s (goal >= 5,000: ${visitRate >= 5000 ? 'met' : 'NOT met'}); ${fmt(visitRate / e.perSecond, 3)} visits per empty-route request (empty route ${fmt(e.perSecond, 0)} req/s in this run)`,
    );
    console.log(
      `    lease         : ${fmt(l.perSecond, 0)} req/s  p50 ${fmt(l.p50, 2)} ms  p99 ${fmt(l.p99, 2)} ms  (${l.count} ok, ${leases.errors} errors, ${empty} empty)`,
    );
    console.log(
      `    batch submit  : ${fmt(s.perSecond, 0)} req/s  p50 ${fmt(s.p50, 2)} ms  p99 ${fmt(s.p99, 2)} ms  (${s.count} ok, ${submits.errors} errors)`,
    );
    console.log(
      `  paced           : ${fmt(offered, 0)} host visits/s offered (${fmt((100 * offered) / visitRate, 0)}% of the closed loop; each agent leases every ~${fmt(cycleMs / 1000, 1)} s), ${fmt(pacedVisits / pacedSeconds, 0)} stored/s over ${fmt(pacedSeconds, 0)} s` +
        // An agent leasing less often than twice a phase submits in it at most once, or not at
        // all: the phase's latencies hold, its stored/s is not a throughput figure.
        (cycleMs / 1000 > pacedSeconds / 2 ? ' (agents lease about once a phase or less: stored/s is not a throughput figure)' : ''),
    );
    console.log(
      `    lease         : ${fmt(pl.perSecond, 0)} req/s  p50 ${fmt(pl.p50, 2)} ms  p99 ${fmt(pl.p99, 2)} ms  (${pl.count} ok, ${pacedLeases.errors} errors) (goal p99 < 25 ms: ${pl.p99 < 25 ? 'met' : 'NOT met'})`,
    );
    console.log(
      `    batch submit  : ${fmt(ps.perSecond, 0)} req/s  p50 ${fmt(ps.p50, 2)} ms  p99 ${fmt(ps.p99, 2)} ms  (${ps.count} ok, ${pacedSubmits.errors} errors)`,
    );
    const inServer = pacedServer.map((p) => fmt(p.routes['/api/v1/agent/work']?.p99 ?? NaN, 2)).join(' and ');
    console.log(
      `    lease p99 inside the server${coords.length > 1 ? 's' : ''} ${inServer} ms; the load generator's own event-loop delay p99 ${fmt(clientLoop.percentile(99) / 1e6, 1)} max ${fmt(clientLoop.max / 1e6, 1)} ms`,
    );
    console.log('  server side (CPU of this whole process, servers and client, per host visit; per coordinator: its loop and routes):');
    coords.forEach((_, k) => {
      const which = coords.length > 1 ? ` #${k + 1}` : '';
      printServer(`closed${which}`, closedServer[k]!, visits, 'visit');
      printServer(`paced${which}`, pacedServer[k]!, pacedVisits, 'visit');
    });
    for (const [what, t] of [
      ['lease', leases],
      ['batch submit', submits],
      ['paced lease', pacedLeases],
      ['paced batch submit', pacedSubmits],
    ] as const) {
      if (t.firstError !== undefined) console.log(`  ${what}: first error answer: ${t.firstError}`);
    }
    if (closedDbCpu !== undefined && pacedDbCpu !== undefined) {
      console.log(
        `  PostgreSQL's own processes: ${fmt((closedDbCpu * 1e6) / Math.max(1, visits), 0)} us CPU/visit closed, ${fmt((pacedDbCpu * 1e6) / Math.max(1, pacedVisits), 0)} us paced (on top of the above)`,
      );
    }
    console.log(
      `load average (1 min, 2 cores shared): ${Object.entries(load)
        .map(([k, v]) => `${k} ${fmt(v, 2)}`)
        .join(', ')}`,
    );
  } finally {
    httpAgent.destroy();
  }
}

/** The coordinators of a batched phase (agent i talks to coordinator i mod n). */
interface Deployment {
  /** Prefix of its load-average entries. */
  readonly key: string;
  readonly label: string;
  readonly scope: string;
  readonly coords: readonly ServerWorker[];
  /** CPU seconds used so far by the database server's processes, when they run on this machine. */
  readonly databaseCpuSeconds?: () => number;
}

const BATCHED_SCOPE = '198.18.0.0/15';
/** Smaller than the CPU measurement's warm-up (3 rounds of 16 x 64 leases): its hosts are visited again. */
const REVISIT_SCOPE = '198.18.0.0/21';

/** PB_BENCH_COORD_LOG: the coordinators' log level (their log goes to stdout; default silent). */
function logLevelOf(env: NodeJS.ProcessEnv): { logLevel?: string } {
  return env.PB_BENCH_COORD_LOG ? { logLevel: env.PB_BENCH_COORD_LOG } : {};
}

/** One coordinator on a fresh SQLite store (its writes on a thread of their own with `thread`), for the duration of `run`. */
async function withSqliteCoordinator(
  { agents, strategy, dataDir }: PhaseContext,
  thread: boolean,
  run: (d: Deployment) => Promise<void>,
): Promise<void> {
  const coord = await startWorker({
    kind: 'pb-bench-coordinator',
    ...logLevelOf(process.env),
    agents,
    dataDir: join(dataDir, thread ? 'batched-thread' : 'batched'),
    strategy,
    scope: BATCHED_SCOPE,
    unpaced: true,
    ...(thread ? { sqliteWriter: 'thread' as const } : {}),
  });
  try {
    const label = thread ? "one coordinator on SQLite, writes on the store's thread (--sqlite-writer thread)" : 'one coordinator on SQLite';
    await run({ key: thread ? 'sqlite-thread' : 'sqlite', label, scope: BATCHED_SCOPE, coords: [coord] });
  } finally {
    await coord.stop();
  }
}

/** A PostgreSQL server for the pg phases: a throwaway local cluster, or PB_BENCH_POSTGRES_URL's. */
interface BenchPostgres {
  readonly url: string;
  /** The cluster's data directory (a throwaway cluster only): its processes' CPU is read from /proc. */
  readonly dataDir?: string;
  /** A fresh schema for one phase (a fresh store). */
  schema(name: string): string;
  stop(): Promise<void>;
}

/**
 * PB_BENCH_POSTGRES_URL's server (each phase in a fresh schema, dropped after), or a throwaway
 * cluster (scripts/pg-throwaway.sh: a temp directory, a free loopback port, fsync off; stopped and
 * deleted after). A string when neither is possible (no PostgreSQL binaries): the phases are skipped.
 */
async function startBenchPostgres(env: NodeJS.ProcessEnv): Promise<BenchPostgres | string> {
  const { execa } = await import('execa');
  const run = `pb_bench_${process.pid}`;
  const external = env.PB_BENCH_POSTGRES_URL;
  if (external) {
    const schemas: string[] = [];
    return {
      url: external,
      schema: (name) => {
        schemas.push(`${run}_${name}`);
        return schemas.at(-1)!;
      },
      stop: async () => {
        const { default: pg } = await import('pg');
        const client = new pg.Client({ connectionString: external });
        await client.connect();
        try {
          for (const schema of schemas) await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
        } finally {
          await client.end();
        }
      },
    };
  }
  // From source (bench/) or built (dist/bench/).
  const script = [new URL('../scripts/pg-throwaway.sh', import.meta.url), new URL('../../scripts/pg-throwaway.sh', import.meta.url)]
    .map((u) => u.pathname)
    .find((p) => existsSync(p));
  if (!script) return 'scripts/pg-throwaway.sh not found';
  // The postgres user (the cluster's owner when run as root) must reach the directory.
  const parent = mkdtempSync(join(tmpdir(), 'pb-bench-pg-'));
  chmodSync(parent, 0o711);
  const dir = join(parent, 'cluster');
  process.stdout.write('starting a throwaway PostgreSQL cluster (scripts/pg-throwaway.sh) ...\n');
  const started = await execa('bash', [script, 'start', dir], { reject: false });
  if (started.exitCode !== 0) {
    rmSync(parent, { recursive: true, force: true });
    return `no PostgreSQL: ${started.stderr.trim().split('\n').at(-1) ?? `pg-throwaway.sh exited ${started.exitCode}`}; set PB_BENCH_POSTGRES_URL to use a running server`;
  }
  return {
    url: started.stdout.trim(),
    dataDir: join(dir, 'data'),
    schema: (name) => `${run}_${name}`,
    stop: async () => {
      await execa('bash', [script, 'stop', dir], { reject: false });
      rmSync(parent, { recursive: true, force: true });
    },
  };
}

/**
 * CPU seconds of a local PostgreSQL cluster: its postmaster (with its reaped children) and its
 * live backends, from /proc (Linux; clock ticks of 1/100 s, the kernel's USER_HZ).
 */
function postgresCpuSeconds(dataDir: string): number {
  const postmaster = Number(readFileSync(join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
  let ticks = 0;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/u.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue; // exited meanwhile
    }
    // After "pid (comm) ": state, ppid, ... utime (14th field), stime, cutime, cstime.
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const self = Number(entry) === postmaster;
    if (!self && Number(f[1]) !== postmaster) continue;
    ticks += Number(f[11]) + Number(f[12]) + (self ? Number(f[13]) + Number(f[14]) : 0);
  }
  return ticks / 100;
}

/** `count` coordinators (`serve --postgres`) on one fresh schema of `postgres`, for the duration of `run`. */
async function withPostgresCoordinators(
  { agents, strategy, dataDir }: PhaseContext,
  postgres: BenchPostgres,
  count: 1 | 2,
  run: (d: Deployment) => Promise<void>,
): Promise<void> {
  const db = { url: postgres.url, schema: postgres.schema(`c${count}`) };
  const coords: ServerWorker[] = [];
  try {
    // The first sets the store up (scope, policy, agents); the others join it.
    const first = await startWorker({
      kind: 'pb-bench-coordinator',
      ...logLevelOf(process.env),
      agents,
      dataDir: join(dataDir, `pg${count}-1`),
      strategy,
      scope: BATCHED_SCOPE,
      unpaced: true,
      postgres: db,
    });
    coords.push(first);
    for (let k = 2; k <= count; k++) {
      coords.push(
        await startWorker({
          kind: 'pb-bench-coordinator',
          ...logLevelOf(process.env),
          agents,
          dataDir: join(dataDir, `pg${count}-${k}`),
          strategy,
          postgres: db,
          joinWith: first.ready.tokens,
        }),
      );
    }
    const dataDirOfDb = postgres.dataDir;
    await run({
      key: `pg${count}`,
      label: count === 1 ? 'one coordinator on PostgreSQL' : `${count} coordinators on one PostgreSQL`,
      scope: BATCHED_SCOPE,
      coords,
      ...(dataDirOfDb ? { databaseCpuSeconds: () => postgresCpuSeconds(dataDirOfDb) } : {}),
    });
  } finally {
    for (const c of coords.reverse()) await c.stop();
  }
}

/** The coordinator load benchmark (see the file comment). */
export async function runCoordinatorBenchmark(env: NodeJS.ProcessEnv): Promise<void> {
  const agents = Number(env.PB_BENCH_COORD_AGENTS ?? 1000);
  const seconds = Number(env.PB_BENCH_COORD_SECONDS ?? 8);
  const maxRequests = Number(env.PB_BENCH_COORD_MAX ?? 200_000);
  const strategy = env.PB_BENCH_COORD_STRATEGY ?? 'adaptive';
  const dataDir = mkdtempSync(join(tmpdir(), 'pb-bench-coord-'));
  // Every agent keeps its connection, as a real fleet does. (With the default maxFreeSockets of
  // 256, ~750 connections were closed whenever the loops paused and reopened at the next phase
  // all at once: SYNs beyond the listen backlog are retried after 1, 3, 7 s, which was the
  // closed loop's "p99" of 10-20 s.)
  const httpAgent = new Agent({ keepAlive: true, maxSockets: agents, maxFreeSockets: agents });
  /** The PostgreSQL server of the pg phases, started on first use; a string says why there is none. */
  let postgres: BenchPostgres | string | undefined;
  const phases = new Set((env.PB_BENCH_COORD_PHASES ?? 'single,batched,thread,pg1,pg2').split(',').map((p) => p.trim()));
  const unknown = [...phases].filter((p) => !['single', 'batched', 'thread', 'pg1', 'pg2', 'cpu', 'cpu-pg'].includes(p));
  if (unknown.length > 0)
    throw new Error(`PB_BENCH_COORD_PHASES: unknown phase ${unknown.join(', ')} (expected single, batched, thread, pg1, pg2, cpu, cpu-pg)`);
  // `cpu` (SQLite) and `cpu-pg` (PostgreSQL) alone: the batched CPU per host visit in process,
  // without the HTTP phases (the figure to compare builds with; `batched` runs the SQLite one too).
  if ([...phases].every((p) => p === 'cpu' || p === 'cpu-pg')) {
    const cpuRounds = Number(env.PB_BENCH_COORD_CPU_ROUNDS ?? 8);
    try {
      if (phases.has('cpu')) await measureBatchedCpu(cpuRounds, 16, strategy);
      if (phases.has('cpu-pg')) {
        const postgres = await startBenchPostgres(env);
        if (typeof postgres === 'string') console.log(`CPU per host visit on PostgreSQL: skipped (${postgres})`);
        else {
          try {
            await measureBatchedCpu(cpuRounds, 16, strategy, postgres);
          } finally {
            await postgres.stop();
          }
        }
      }
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
    return;
  }
  try {
    // 1. The empty fastify route: the ceiling for this machine, client and concurrency.
    const empty = await startWorker({ kind: 'pb-bench-empty' });
    // Warm-up (not measured), as for the coordinator below: connections open, code compiled.
    await drive(agents, Math.min(2, seconds), Math.min(maxRequests, 10_000), async () => {
      await send(httpAgent, empty.ready.port, 'GET', '/empty', undefined);
      return 1;
    });
    const emptyTally = new Tally();
    const load: Record<string, number> = { start: loadavg()[0]! };
    await empty.ask('stats-reset');
    const emptySeconds = await drive(agents, seconds, maxRequests, async () => {
      const t0 = performance.now();
      const res = await send(httpAgent, empty.ready.port, 'GET', '/empty', undefined);
      if (res.status === 200) emptyTally.add(performance.now() - t0);
      else emptyTally.errors++;
      return 1;
    });
    const emptyServer = await empty.ask<ServerStats>('stats');
    await empty.stop();
    httpAgent.destroy();

    const e = emptyTally.summary(emptySeconds);
    const context: PhaseContext = {
      agents,
      seconds,
      maxRequests,
      strategy,
      dataDir,
      env,
      e,
      emptyErrors: emptyTally.errors,
      emptyServer,
      load,
    };
    if (phases.has('single')) await runSinglePhases(context);
    if (phases.has('batched')) await withSqliteCoordinator(context, false, (d) => runBatchedPhases(context, d));
    if (phases.has('thread')) await withSqliteCoordinator(context, true, (d) => runBatchedPhases(context, d));
    if (phases.has('batched') || phases.has('cpu')) await measureBatchedCpu(Number(env.PB_BENCH_COORD_CPU_ROUNDS ?? 8), 16, strategy);
    for (const count of [1, 2] as const) {
      if (!phases.has(`pg${count}`)) continue;
      postgres ??= await startBenchPostgres(env);
      if (typeof postgres === 'string')
        console.log(`batched work, ${count} coordinator${count > 1 ? 's' : ''} on PostgreSQL: skipped (${postgres})`);
      else await withPostgresCoordinators(context, postgres, count, (d) => runBatchedPhases(context, d));
    }
  } finally {
    if (typeof postgres === 'object') await postgres.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}
