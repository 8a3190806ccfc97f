import { chmodSync, existsSync, mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { execa } from 'execa';
import pg from 'pg';
import { afterAll, beforeAll, inject } from 'vitest';

/**
 * A real, throwaway PostgreSQL for tests: `scripts/pg-throwaway.sh` (the one implementation,
 * also for people) starts a cluster in a temporary directory on a free loopback port, as the
 * `postgres` user when the tests run as root; it is stopped and deleted after the file.
 *
 * With PORTBANDIT_TEST_POSTGRES_URL set, that server is used instead (each test in its own
 * schema). Without PostgreSQL binaries the suites are skipped with a message, except under
 * CI=true, where a missing PostgreSQL fails the run (CI installs it: scripts/setup.sh).
 */

const SCRIPT = resolve(import.meta.dirname, '../../scripts/pg-throwaway.sh');

/** Why PostgreSQL tests cannot run here, or undefined when they can. */
export function postgresMissing(): string | undefined {
  if (process.env.PORTBANDIT_TEST_POSTGRES_URL) return undefined;
  const dirs = [...(process.env.PATH ?? '').split(':'), ...listVersions('/usr/lib/postgresql').map((v) => `/usr/lib/postgresql/${v}/bin`)];
  if (dirs.some((d) => d !== '' && existsSync(join(d, 'initdb')) && existsSync(join(d, 'pg_ctl')))) return undefined;
  const reason = 'PostgreSQL binaries (initdb, pg_ctl) not found: install them with `apt-get install postgresql` (scripts/setup.sh does)';
  if (process.env.CI === 'true') throw new Error(`${reason}; CI must run the PostgreSQL suites`);
  return reason;
}

function listVersions(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

export interface ThrowawayPostgres {
  readonly url: string;
  stop(): Promise<void>;
}

/**
 * Start a throwaway cluster (or use PORTBANDIT_TEST_POSTGRES_URL), in `dir` when given (its
 * parent must be open to the postgres user), else in a new temporary directory.
 */
export async function startThrowawayPostgres(where?: string): Promise<ThrowawayPostgres> {
  const external = process.env.PORTBANDIT_TEST_POSTGRES_URL;
  if (external) return { url: external, stop: async () => {} };
  const dir = where ?? newClusterDir();
  const started = await execa('bash', [SCRIPT, 'start', dir], { reject: false });
  if (started.exitCode !== 0) throw new Error(`scripts/pg-throwaway.sh start failed (${started.exitCode}):\n${started.stderr}`);
  const url = started.stdout.trim();
  return {
    url,
    stop: async () => {
      await execa('bash', [SCRIPT, 'stop', dir], { reject: false });
      await execa('rm', ['-rf', resolve(dir, '..')], { reject: false });
    },
  };
}

function newClusterDir(): string {
  // The postgres user (the cluster's owner when tests run as root) must be able to reach it:
  // the parent is traversable, not listable; the script makes the cluster directory its own.
  const parent = mkdtempSync(join(tmpdir(), 'pb-pg-'));
  chmodSync(parent, 0o711);
  return join(parent, 'cluster');
}

let schemas = 0;

/** This worker's cluster, when the run keeps one per worker (see below). */
let workerCluster: Promise<ThrowawayPostgres> | undefined;

/**
 * A throwaway server for this test file and fresh schema names on it: each store a test opens
 * gets its own, so stores never see each other. Under the unit project
 * (test/helpers/postgres-global.ts) the server is the worker's: started by its first file that
 * needs one, kept for the files after it (one at a time), stopped when the run ends. Otherwise
 * one is started in beforeAll and stopped in afterAll.
 */
export function usePostgres(): { url(): string; freshSchema(): string } {
  let server: ThrowawayPostgres | undefined;
  const run = `t${process.pid}_${Date.now().toString(36)}`;
  beforeAll(async () => {
    const clusters = process.env.PORTBANDIT_TEST_POSTGRES_URL ? undefined : inject('postgresClustersDir');
    if (clusters) {
      workerCluster ??= startThrowawayPostgres(join(clusters, `worker-${process.pid}`));
      const cluster = await workerCluster.catch((error: unknown) => {
        workerCluster = undefined;
        throw error;
      });
      server = { url: cluster.url, stop: async () => {} };
    } else server = await startThrowawayPostgres();
  }, 60_000);
  afterAll(async () => {
    if (process.env.PORTBANDIT_TEST_POSTGRES_URL && server) await dropSchemas(server.url, run);
    await server?.stop();
  });
  return {
    url: () => {
      if (!server) throw new Error('the throwaway PostgreSQL is not running (usePostgres outside a test?)');
      return server.url;
    },
    freshSchema: () => `pb_${run}_${schemas++}`,
  };
}

/** Drop this run's schemas from a server the tests do not own. */
async function dropSchemas(url: string, run: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query<{ nspname: string }>(`SELECT nspname FROM pg_namespace WHERE nspname LIKE $1`, [`pb_${run}_%`]);
    for (const { nspname } of rows) await client.query(`DROP SCHEMA ${nspname} CASCADE`);
  } finally {
    await client.end();
  }
}
