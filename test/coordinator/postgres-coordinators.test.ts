import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { resolveConfig } from '../../src/coordinator/config.js';
import type { LearnedDocument } from '../../src/coordinator/learner.js';
import type { SubmitResponse, WorkItem } from '../../src/protocol/protocol.js';
import { openPostgresStore } from '../../src/store/postgres-store.js';
import { postgresMissing, usePostgres } from '../helpers/postgres.js';
import { cliProcessArgs } from '../helpers/cli-process.js';

/**
 * Several `portbandit serve` processes on one real PostgreSQL (a throwaway cluster), with
 * simulated agents speaking the agent protocol over HTTP on loopback and alternating between
 * the coordinators. No scanner runs: the agents answer from a fixed table of open ports for
 * 198.18.0.0/26, so nothing is ever sent to any address.
 */
const missing = postgresMissing();
if (missing) console.warn(`postgres-coordinators: skipped: ${missing}`);

const SCOPE = '198.18.0.0/26';
const ADDRESSES = Array.from({ length: 64 }, (_, i) => `198.18.0.${i}`);
/** What the stand-in scanner finds open on a host (stable, so no batch looks like packet loss). */
const openOn = (ip: string): number[] => (Number(ip.split('.')[3]) % 2 === 0 ? [22, 80, 443] : [22, 8080]);

interface Server {
  readonly name: string;
  readonly child: ChildProcess;
  readonly url: string;
  readonly stderr: () => string;
  readonly stdout: () => string;
  alive: boolean;
}

interface LeaseSeen {
  readonly server: string;
  readonly item: WorkItem;
}

const started: Server[] = [];
const dirs: string[] = [];
afterEach(async () => {
  for (const s of started.splice(0)) {
    if (s.alive) {
      s.child.kill('SIGKILL');
      await once(s.child, 'exit').catch(() => {});
    }
  }
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function startServe(name: string, url: string, schema: string, leaseSeconds: number): Promise<Server> {
  const data = mkdtempSync(join(tmpdir(), `pb-serve-${name}-`));
  dirs.push(data);
  const child = spawn(
    process.execPath,
    [
      ...cliProcessArgs(),
      'serve',
      '--data',
      data,
      '--port',
      '0',
      '--postgres',
      url,
      '--postgres-schema',
      schema,
      '--lease-seconds',
      String(leaseSeconds),
      '--log-level',
      'info',
    ],
    {
      cwd: join(import.meta.dirname, '../..'),
      env: { ...process.env, PORTBANDIT_SWEEP_MS: '200', PORTBANDIT_LEARN_BATCH: '4' },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let err = '';
  let out = '';
  child.stdout!.on('data', (chunk: Buffer) => (out += chunk.toString()));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`serve ${name} did not start: ${err}`)), 40_000);
    child.stderr!.on('data', (chunk: Buffer) => {
      err += chunk.toString();
      const m = /listening on (http:\/\/\S+?) /.exec(err) ?? /API docs: (http:\/\/\S+?)\/docs/.exec(err);
      if (m) {
        clearTimeout(timer);
        const server: Server = { name, child, url: m[1]!, stderr: () => err, stdout: () => out, alive: true };
        child.once('exit', () => (server.alive = false));
        started.push(server);
        resolve(server);
      }
    });
    child.once('exit', (code) => reject(new Error(`serve ${name} exited ${code}: ${err}`)));
  });
}

async function call<T>(server: Server, method: string, path: string, token: string, body?: unknown): Promise<T> {
  const response = await fetch(`${server.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${method} ${path} on ${server.name}: ${response.status} ${text}`);
  return JSON.parse(text) as T;
}

/** The result the stand-in scanner reports for a work item. */
function resultFor(item: WorkItem) {
  const open = new Set(openOn(item.ip));
  return {
    leaseId: item.leaseId,
    ip: item.ip,
    status: 'up' as const,
    startedAt: item.issuedAt,
    finishedAt: Math.max(item.issuedAt, Date.now()),
    preflight: 'none' as const,
    ports: item.ports.filter((p) => open.has(p)).map((port) => ({ port, state: 'open' as const, service: port === 22 ? 'ssh' : 'http' })),
  };
}

interface Run {
  readonly leases: LeaseSeen[];
  readonly acks: SubmitResponse[];
  readonly dropped: LeaseSeen[];
  /** Requests that failed (a dead coordinator's refused connections among them). */
  readonly errors: string[];
}

/**
 * Agents that alternate between the coordinators for work and for results, until `done()`.
 * `drops(server)`: the agent "dies" with that coordinator and never submits what it got there.
 */
async function runAgents(
  servers: Server[],
  tokens: string[],
  done: () => Promise<boolean | string>,
  drops: (server: Server) => boolean,
): Promise<Run> {
  const run: Run = { leases: [], acks: [], dropped: [], errors: [] };
  let finished = false;
  const alive = (turn: number): Server | undefined => {
    const live = servers.filter((s) => s.alive);
    return live.length === 0 ? undefined : live[turn % live.length];
  };
  const agent = async (index: number, token: string): Promise<void> => {
    let turn = index;
    while (!finished) {
      const from = alive(turn++);
      if (!from) return;
      let items: WorkItem[] = [];
      try {
        items = (await call<{ items?: WorkItem[] }>(from, 'GET', '/api/v1/agent/work?max=4', token)).items ?? [];
      } catch (error) {
        // That coordinator just died (or failed): ask the other.
        run.errors.push(`${from.name}: ${String(error)}`);
        await new Promise((resolve) => setTimeout(resolve, 100));
        continue;
      }
      if (items.length === 0) await new Promise((resolve) => setTimeout(resolve, 100));
      for (const item of items) {
        const seen = { server: from.name, item };
        run.leases.push(seen);
        if (drops(from)) {
          run.dropped.push(seen);
          continue;
        }
        for (let attempt = 0; attempt < 4; attempt++) {
          const to = alive(turn++);
          if (!to) return;
          try {
            run.acks.push(await call<SubmitResponse>(to, 'POST', '/api/v1/agent/results', token, resultFor(item)));
            break;
          } catch (error) {
            run.errors.push(`${to.name}: ${String(error)}`);
            // Refused by a live coordinator: the test fails on `errors`; the lease expires and
            // is re-issued meanwhile, so the run still ends and shows what was refused.
            if (to.alive && !String(error).includes('fetch failed')) break;
          }
        }
      }
    }
  };
  const agents = tokens.map((token, i) =>
    agent(i, token).catch((error: unknown) => {
      run.errors.push(`agent ${i} stopped: ${String(error)}`);
    }),
  );
  const deadline = Date.now() + 90_000;
  for (;;) {
    const state = await done();
    if (state === true) break;
    if (Date.now() > deadline) {
      finished = true;
      const logs = servers.map(
        (s) =>
          `${s.name} (${s.alive ? 'alive' : 'dead'}): ${s
            .stdout()
            .split('\n')
            .filter((l) => /"level":(40|50|60)/.test(l))
            .slice(-3)
            .join(' / ')} ${s.stderr().slice(-300)}`,
      );
      // What the coordinators logged of the addresses the cycle left without a visit.
      const missing = typeof state === 'string' ? (/no visit of ([\d. ]+) \(/.exec(state)?.[1] ?? '').trim().split(' ') : [];
      const mentions = servers.flatMap((s) =>
        s
          .stdout()
          .split('\n')
          .filter((l) => missing.some((ip) => ip !== '' && l.includes(`"${ip}"`)))
          .map((l) => `${s.name}: ${l.slice(0, 400)}`),
      );
      // What the agents saw of them.
      const handed = run.leases
        .filter((l) => typeof state === 'string' && state.includes(`${l.item.ip} `))
        .map((l) => `${l.item.ip} round ${l.item.round} ${l.item.reason} from ${l.server}${run.dropped.includes(l) ? ' (dropped)' : ''}`);
      throw new Error(
        `the cycle did not finish (${state}): ${run.leases.length} leases, ${run.acks.length} results; handed out: ${handed.join(', ') || 'none'}; logged: ${mentions.join(' | ') || 'nothing'}; last errors: ${run.errors.slice(-3).join(' | ')}; ${logs.join(' ;; ')}`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  finished = true;
  await Promise.all(agents);
  return run;
}

describe.skipIf(missing !== undefined)('several coordinators on one PostgreSQL', () => {
  const pg = usePostgres();

  /** Two coordinators started together; the bootstrap token, agents and scope set up through one of them. */
  async function setUp(leaseSeconds: number) {
    const schema = pg.freshSchema();
    const servers = await Promise.all([startServe('a', pg.url(), schema, leaseSeconds), startServe('b', pg.url(), schema, leaseSeconds)]);
    const printed = servers.map((s) => /^\s+(pbk_\S+)$/m.exec(s.stderr())?.[1]);
    const admin = printed.find((t) => t !== undefined)!;
    const tokens: string[] = [];
    for (let i = 0; i < 4; i++)
      tokens.push((await call<{ token: string }>(servers[i % 2]!, 'POST', '/api/v1/admin/agents', admin, { name: `sim-${i}` })).token);
    await call(servers[0]!, 'POST', '/api/v1/admin/scope?list=scope', admin, { entries: [{ range: SCOPE, tags: ['lab'] }] });
    const store = await openPostgresStore({ url: pg.url(), schema, poolSize: 2 });
    return { schema, servers, printed, store, tokens };
  }

  /** Every address has a stored visit and nothing is leased or queued. */
  const cycleDone = (store: Awaited<ReturnType<typeof openPostgresStore>>) => async (): Promise<boolean | string> => {
    const [hosts, leases, queued] = [await store.count(undefined), await store.countLeases(), await store.countQueuedWork()];
    if (hosts === ADDRESSES.length && leases === 0 && queued === 0) return true;
    // Not done yet: which addresses have no visit, and where each stands (for a failure's message).
    const pool = store.db.pool;
    const stored = new Set((await pool.query<{ ip: string }>('SELECT DISTINCT ip FROM scans')).rows.map((r) => r.ip));
    const missing = ADDRESSES.filter((ip) => !stored.has(ip));
    const detail = [];
    for (const ip of missing.slice(0, 4)) {
      const queue = (
        await pool.query<{ hidden_until: string; doc: string }>('SELECT hidden_until, doc FROM work_queue WHERE ip = $1', [ip])
      ).rows;
      const lease = (await pool.query<{ deadline: string }>('SELECT deadline FROM leases WHERE ip = $1', [ip])).rows;
      detail.push(`${ip}: queue ${JSON.stringify(queue)}, leases ${JSON.stringify(lease)}`);
    }
    return `${hosts} hosts stored, ${leases} leases, ${queued} queued (visible); no visit of ${missing.join(' ')} (${detail.join('; ')})`;
  };

  /** Learned visits (in the stored state) plus those still queued for the learner. */
  async function learnedAndQueued(
    store: Awaited<ReturnType<typeof openPostgresStore>>,
  ): Promise<{ learned: number; queued: number; lossy: number }> {
    const docs = await store.listDocuments<LearnedDocument>('strategyStates');
    let learned = 0;
    let queued = 0;
    let lossy = 0;
    for (const doc of docs) {
      learned += doc.value.learned + doc.value.pseudo;
      lossy += doc.value.lossyBatches;
      const policy = doc.key.slice(0, doc.key.lastIndexOf('/'));
      queued += (await store.readLearning(doc.value.through)).items.filter((i) => i.key === policy).length;
    }
    if (docs.length === 0) queued = (await store.readLearning(undefined)).items.length;
    return { learned, queued, lossy };
  }

  async function stop(server: Server): Promise<void> {
    server.child.kill('SIGTERM');
    await once(server.child, 'exit');
  }

  it('walk one cycle between them: every address leased once, every acknowledged result stored, nothing lost to learning', async () => {
    const { servers, printed, store, tokens } = await setUp(20);
    try {
      // Started together on an empty database: exactly one printed the bootstrap token.
      expect(printed.filter((t) => t !== undefined)).toHaveLength(1);
      expect(servers.find((_, i) => printed[i] === undefined)!.stderr()).toContain('an admin token exists in the shared PostgreSQL store');
      // The CLI commands they suggest reach the shared database (a `--data` there would create a
      // SQLite store no coordinator reads), and neither repeats the URL (it may hold a password).
      const printer = servers.find((_, i) => printed[i] !== undefined)!.stderr();
      expect(printer).toMatch(/PORTBANDIT_POSTGRES_URL=<postgres-url> portbandit token create --agent NAME\n/);
      expect(printer).toMatch(/PORTBANDIT_POSTGRES_URL=<postgres-url> portbandit scope add \S+ --tag lab\n/);
      expect(printer).toContain('<postgres-url>: the --postgres URL this coordinator was started with');
      expect(printer).not.toMatch(/ --data /);
      for (const s of servers) expect(s.stderr()).not.toContain(pg.url());
      expect(servers.find((_, i) => printed[i] === undefined)!.stderr()).toMatch(
        /PORTBANDIT_POSTGRES_URL=<postgres-url> portbandit token create --admin NAME/,
      );

      for (const s of servers) expect(await (await fetch(`${s.url}/healthz`)).json()).toMatchObject({ status: 'ok', store: 'postgres' });

      const run = await runAgents(servers, tokens, cycleDone(store), () => false);
      expect(run.errors, 'no request failed').toEqual([]);

      // Every scope address was handed out exactly once as cycle 1's first round, by either coordinator.
      const firstRounds = run.leases
        .filter((l) => l.item.reason === 'cycle' && l.item.round === 0 && l.item.cycle === 1)
        .map((l) => l.item.ip);
      expect(firstRounds.sort()).toEqual([...ADDRESSES].sort());
      expect(new Set(run.leases.map((l) => l.server))).toEqual(new Set(['a', 'b']));
      expect(run.leases.every((l) => l.item.reason !== 'expired')).toBe(true);
      // Every acknowledged result is stored.
      const accepted = run.acks.filter((a) => a.accepted);
      expect(accepted.length).toBeGreaterThanOrEqual(ADDRESSES.length);
      for (const ack of accepted) expect(await store.getScan(ack.scanId), ack.scanId).toBeDefined();
      // Each coordinator's dashboard figures are the deployment's, not the share it served: the
      // cycle's coverage per tag and each agent's visits of the last hour (each agent submitted
      // to both; a per-process tally showed one coordinator 0 of 0 handed out and 0 visits).
      const { admin } = { admin: printed.find((t) => t !== undefined)! };
      for (const s of servers) {
        const stats = await call<{
          coverage: Array<{ tag: string; handedOut: number; scanned: number; finished: number; fraction: number }>;
        }>(s, 'GET', '/api/v1/stats', admin);
        const lab = ADDRESSES.length;
        expect(stats.coverage, s.name).toEqual([
          { tag: 'lab', handedOut: lab, scanned: lab, finished: lab, addresses: String(lab), fraction: 1 },
        ]);
        const agents = (await call<{ agents: Array<{ visitsLastHour: number }> }>(s, 'GET', '/api/v1/admin/agents', admin)).agents;
        expect(
          agents.reduce((n, a) => n + a.visitsLastHour, 0),
          s.name,
        ).toBe(lab);
      }
      // Stopped gracefully: the learner writes what it learned; nothing is lost or learned twice.
      await Promise.all(servers.map(stop));
      const finishedVisits = accepted.filter((a) => !a.followUp).length;
      const { learned, queued, lossy } = await learnedAndQueued(store);
      expect(lossy).toBe(0);
      expect(learned + queued).toBe(finishedVisits);
      expect(learned).toBeGreaterThan(0);
    } finally {
      await store.close();
    }
  }, 150_000);

  it('a coordinator killed mid-cycle: the other carries on, re-issues its leases after they expire, and takes over learning', async () => {
    const { servers, store, tokens } = await setUp(6);
    try {
      // Kill the learner: the harder case (its role and what it had learned in memory go with it).
      let learner: Server | undefined;
      for (let i = 0; i < 100 && !learner; i++) {
        learner = servers.find((s) => s.stdout().includes('this coordinator is the learner now'));
        if (!learner) await new Promise((resolve) => setTimeout(resolve, 100));
      }
      expect(learner, 'one coordinator was elected learner').toBeDefined();
      const survivor = servers.find((s) => s !== learner)!;
      let handed = 0;
      const run = await runAgents(servers, tokens, cycleDone(store), (from) => {
        // A third of the way into the cycle the learner dies; its agents' work dies with it.
        if (from === learner && ++handed === 20) {
          learner.child.kill('SIGKILL');
          learner.alive = false;
        }
        return from === learner && handed >= 20;
      });
      expect(learner!.alive).toBe(false);
      // Only requests to the killed coordinator failed, apart from results refused because their
      // 6 s lease had expired before the agent sent them (a loaded machine stalls the processes
      // that long): each such lease must have been issued again.
      const reissued = run.leases.filter((l) => l.item.reason === 'expired');
      const expiredAndReissued = (e: string): boolean => {
        // Refused after its deadline: swept already ("is unknown or has expired", 409 conflict) or
        // not yet ("expired at …", PB_ERR_LEASE_EXPIRED).
        const id = /lease (lease_\S+?);? (?:is unknown or has expired|expired at )/.exec(e)?.[1];
        const lease = id === undefined ? undefined : run.leases.find((l) => l.item.leaseId === id);
        return lease !== undefined && reissued.some((l) => l.item.ip === lease.item.ip && l.item.round === lease.item.round && l !== lease);
      };
      expect(
        run.errors.filter((e) => !(e.startsWith(`${learner!.name}: `) && e.includes('fetch failed')) && !expiredAndReissued(e)),
      ).toEqual([]);
      expect(run.dropped.length).toBeGreaterThan(0);
      // Each lease that died with the killed coordinator was issued again by the survivor, after expiry.
      for (const dead of run.dropped) {
        // The first re-issue after the dead lease was issued (an earlier one of the same round, if
        // any, is one that expired on a loaded machine and led to the dead lease itself).
        const again = reissued
          .filter((l) => l.item.ip === dead.item.ip && l.item.round === dead.item.round && l.item.issuedAt > dead.item.issuedAt)
          .sort((x, y) => x.item.issuedAt - y.item.issuedAt)[0];
        expect(again, `${dead.item.ip} round ${dead.item.round} re-issued`).toBeDefined();
        expect(again!.server).toBe(survivor.name);
        expect(again!.item.issuedAt).toBeGreaterThanOrEqual(dead.item.deadline);
      }
      // The cycle's first rounds: each address once, apart from those re-issued after expiry.
      const firstRounds = run.leases
        .filter((l) => l.item.reason === 'cycle' && l.item.round === 0 && l.item.cycle === 1)
        .map((l) => l.item.ip);
      expect(new Set(firstRounds).size).toBe(firstRounds.length);
      expect(await store.count(undefined)).toBe(ADDRESSES.length);
      for (const ack of run.acks.filter((a) => a.accepted)) expect(await store.getScan(ack.scanId), ack.scanId).toBeDefined();
      // The survivor became the learner and learned everything, the dead learner's share included.
      await stop(survivor);
      expect(survivor.stdout()).toContain('this coordinator is the learner now');
      const finishedVisits = run.acks.filter((a) => a.accepted && !a.followUp).length;
      const { learned, queued, lossy } = await learnedAndQueued(store);
      expect(lossy).toBe(0);
      // A result the dying coordinator committed may never have been answered (the connection
      // died with it): it is learned though the agent saw no acknowledgement. At most one per
      // request that failed that way.
      const unanswered = run.errors.filter((e) => e.includes('fetch failed')).length;
      expect(learned + queued).toBeGreaterThanOrEqual(finishedVisits);
      expect(learned + queued).toBeLessThanOrEqual(finishedVisits + unanswered);
    } finally {
      await store.close();
    }
  }, 180_000);
});

describe('serve --postgres configuration', () => {
  it('takes the URL and schema from flags or PORTBANDIT_POSTGRES_URL / _SCHEMA', () => {
    const url = 'postgres://portbandit@127.0.0.1:5432/portbandit';
    expect(resolveConfig({ env: { PORTBANDIT_POSTGRES_URL: url } })).toMatchObject({ postgresUrl: url, postgresSchema: 'portbandit' });
    expect(resolveConfig({ flags: { postgresUrl: url, postgresSchema: 'site_b' }, env: {} })).toMatchObject({
      postgresUrl: url,
      postgresSchema: 'site_b',
    });
    // The connection pool: 10 unless given.
    expect(resolveConfig({ env: { PORTBANDIT_POSTGRES_URL: url } }).postgresPool).toBe(10);
    expect(resolveConfig({ env: { PORTBANDIT_POSTGRES_URL: url, PORTBANDIT_POSTGRES_POOL: '64' } }).postgresPool).toBe(64);
    expect(() => resolveConfig({ flags: { postgresPool: 1 }, env: {} })).toThrow(
      expect.objectContaining({ code: 'PB_ERR_CONFIG', where: '--postgres-pool' }) as unknown as Error,
    );
  });

  it('refuses a URL that is not PostgreSQL and a bad schema, naming the source; takes PostgreSQL with an Elasticsearch index', () => {
    const refused = (f: () => unknown, where: string) =>
      expect(f).toThrow(expect.objectContaining({ code: 'PB_ERR_CONFIG', where }) as unknown as Error);
    refused(() => resolveConfig({ env: { PORTBANDIT_POSTGRES_URL: 'http://127.0.0.1:5432' } }), 'env PORTBANDIT_POSTGRES_URL');
    refused(() => resolveConfig({ flags: { postgresSchema: 'Drop Table' }, env: {} }), '--postgres-schema');
    expect(
      resolveConfig({ flags: { postgresUrl: 'postgres://127.0.0.1/pb', elasticsearchUrl: 'http://127.0.0.1:9200' }, env: {} }),
    ).toMatchObject({
      postgresUrl: 'postgres://127.0.0.1/pb',
      elasticsearchUrl: 'http://127.0.0.1:9200',
    });
  });
});
