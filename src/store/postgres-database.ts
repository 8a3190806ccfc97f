import DataLoader from 'dataloader';
import type pg from 'pg';
import { PortbanditError, isPortbanditError } from '../core/index.js';

/** Where a PostgreSQL store lives: a server, and a schema in its database. */
export interface PostgresOptions {
  /** Connection URL, e.g. `postgres://portbandit@127.0.0.1:5432/portbandit`. */
  readonly url: string;
  /** Schema holding the tables (created when missing); default `portbandit`. One schema = one installation. */
  readonly schema?: string;
  /** Connections in the pool (default 10). */
  readonly poolSize?: number;
  /**
   * Longest a call waits for a free pool connection (or for a new one to connect), ms (default
   * 10,000). Past it the call fails with PB_ERR_STORE_BUSY (503 with Retry-After over HTTP).
   */
  readonly connectTimeoutMs?: number;
  /**
   * Record every stored visit, event append and history deletion in the outbox, in the same
   * transaction, for a feeder to carry to a separate search index (docs/store.md). Default false.
   */
  readonly outbox?: boolean;
}

/**
 * Overload rather than failure: the pool had no connection free within its connect time-out
 * (pg-pool's "timeout exceeded when trying to connect"), or the server refused a connection for
 * too many (SQLSTATE 53300). Retrying later can succeed; nothing of the call ran.
 */
export function isOverload(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false;
  const { code, message } = error as { code?: unknown; message?: unknown };
  return code === '53300' || (typeof message === 'string' && message.includes('timeout exceeded when trying to connect'));
}

/** A client or the pool: anything a query can run on. */
export type Queryable = Pick<pg.PoolClient, 'query'>;

export const DEFAULT_POSTGRES_SCHEMA = 'portbandit';

/** int8 (counts, times, sequence numbers) as JS numbers: every value we store fits in 2^53. */
function int8AsNumber(types: typeof pg.types): { getTypeParser: typeof pg.types.getTypeParser } {
  return {
    getTypeParser: ((oid: number, format?: string) =>
      oid === types.builtins.INT8
        ? (value: string) => Number(value)
        : types.getTypeParser(oid, format as 'text')) as typeof pg.types.getTypeParser,
  };
}

/**
 * A part of the schema with its migrations, applied in order under a transaction-level advisory
 * lock (so coordinators starting together migrate once) and tracked per part in
 * `schema_version`. Append a migration; never edit one.
 */
export interface SchemaPart {
  readonly name: string;
  readonly migrations: readonly string[];
}

const COORDINATION_MIGRATIONS: readonly string[] = [
  // 1: the coordination tables (docs/store.md)
  `
  CREATE TABLE meta (key text PRIMARY KEY, value bigint NOT NULL);
  INSERT INTO meta (key, value) VALUES ('scope_version', 0);
  CREATE TABLE scope_entries (
    list text NOT NULL, range text NOT NULL, tags jsonb NOT NULL, added_at bigint NOT NULL,
    PRIMARY KEY (list, range)
  );
  CREATE TABLE documents (
    collection text NOT NULL, key text NOT NULL, value text NOT NULL,
    revision integer NOT NULL, updated_at bigint NOT NULL,
    PRIMARY KEY (collection, key)
  );
  CREATE TABLE agents (
    id text PRIMARY KEY, name text NOT NULL, token_hash text NOT NULL UNIQUE, version text,
    created_at bigint NOT NULL, last_seen_at bigint, counters jsonb NOT NULL
  );
  CREATE TABLE admin_tokens (
    id text PRIMARY KEY, name text NOT NULL, token_hash text NOT NULL UNIQUE, created_at bigint NOT NULL
  );
  -- At most one live lease per address: the unique constraint, not the coordinators, holds it.
  CREATE TABLE leases (
    id text PRIMARY KEY, ip text NOT NULL CONSTRAINT leases_one_per_ip UNIQUE, agent_id text NOT NULL,
    deadline bigint NOT NULL, doc text NOT NULL
  );
  CREATE INDEX leases_deadline ON leases (deadline, id);
  CREATE INDEX leases_agent ON leases (agent_id, deadline);
  -- A dequeued item is hidden, not deleted, until a lease for its address is written (which
  -- deletes it): a coordinator killed in between leaves it to come back (dequeueWork).
  CREATE TABLE work_queue (seq bigserial PRIMARY KEY, ip text NOT NULL, hidden_until bigint NOT NULL DEFAULT 0, doc text NOT NULL);
  CREATE INDEX work_queue_visible ON work_queue (hidden_until, seq);
  CREATE INDEX work_queue_taken ON work_queue (ip) WHERE hidden_until > 0;
  `,
  // 2: finished visits waiting for the elected learner; read by transaction id (readLearning)
  `CREATE TABLE learning_queue (seq bigserial PRIMARY KEY, xid xid8 NOT NULL DEFAULT pg_current_xact_id(), doc text NOT NULL);
   CREATE INDEX learning_queue_xid ON learning_queue (xid, seq);`,
  // 3: what a separate search index (Elasticsearch) has still to receive (readOutbox)
  `CREATE TABLE outbox (seq bigserial PRIMARY KEY, doc text NOT NULL);`,
  // 4: the queue is served by class, then in order (src/store/queue-priority.ts): visits under
  // way (follow-up rounds, expired leases) 0, manual rescans 1, the cycle 2; items queued before
  // get their class from their reason. The claim (dequeueWork) walks work_queue_claim in order
  // and skips held items. No index covers hidden_until, so a dequeue's hold (and a hold that
  // ended) rewrites the row in place (a HOT update) instead of adding index entries to every index.
  `
  ALTER TABLE work_queue ADD COLUMN priority smallint NOT NULL DEFAULT 2;
  UPDATE work_queue SET priority = CASE doc::jsonb ->> 'reason' WHEN 'followup' THEN 0 WHEN 'expired' THEN 0 WHEN 'manual' THEN 1 ELSE 2 END;
  DROP INDEX work_queue_visible;
  DROP INDEX work_queue_taken;
  CREATE INDEX work_queue_claim ON work_queue (priority, seq);
  CREATE INDEX work_queue_ip ON work_queue (ip);
  `,
  // 5: held items leave the claim index. With 4, every claim walked past every item held at that
  // moment (they are the oldest, at the head): under overload, 1,000 lease requests held ~20,000
  // items and each claim read ~10,000 buffers. A hold now moves the row out of work_queue_claim
  // and into work_queue_held (no longer a HOT update: a few index entries per claimed item); a
  // claim reads the held index only for holds that ended (dequeueWork).
  `
  DROP INDEX work_queue_claim;
  CREATE INDEX work_queue_claim ON work_queue (priority, seq) WHERE hidden_until = 0;
  CREATE INDEX work_queue_held ON work_queue (hidden_until) WHERE hidden_until > 0;
  `,
];
/** The coordination tables. */
export const COORDINATION_SCHEMA: SchemaPart = { name: 'coordination', migrations: COORDINATION_MIGRATIONS };

/** A pool on one schema, migrated. */
export class PostgresDatabase {
  private constructor(
    readonly pool: pg.Pool,
    readonly schema: string,
    private readonly where: string,
  ) {}

  static async open(options: PostgresOptions, parts: readonly SchemaPart[] = [COORDINATION_SCHEMA]): Promise<PostgresDatabase> {
    const schema = options.schema ?? DEFAULT_POSTGRES_SCHEMA;
    if (!/^[a-z_][a-z0-9_]{0,62}$/u.test(schema)) {
      throw new PortbanditError(
        'PB_ERR_CONFIG',
        `'${schema}' is not a usable schema name; expected lower-case letters, digits and _ (at most 63)`,
        {
          where: 'store.postgres.schema',
        },
      );
    }
    const where = `${redactUrl(options.url)} schema ${schema}`;
    // Loaded here, not at the top: a command that never opens PostgreSQL does not pay for it.
    const { default: pg } = await import('pg');
    const pool = new pg.Pool({
      connectionString: options.url,
      max: options.poolSize ?? 10,
      types: int8AsNumber(pg.types),
      options: `-c search_path=${schema}`,
      connectionTimeoutMillis: options.connectTimeoutMs ?? 10_000,
    });
    // An idle connection the server dropped must not crash the process; the next query reconnects.
    pool.on('error', () => {});
    const db = new PostgresDatabase(pool, schema, where);
    try {
      for (const part of parts) await db.migrate(part);
    } catch (error) {
      await pool.end().catch(() => {});
      throw db.wrap(error, 'opening the database');
    }
    return db;
  }

  private async migrate(part: SchemaPart): Promise<void> {
    const { migrations } = part;
    await this.transaction(async (client) => {
      // Everyone starting at once waits here; the first migrates, the rest see it done.
      await client.query('SELECT pg_advisory_xact_lock($1)', [lockKey(`migrate:${this.schema}`)]);
      await client.query(`CREATE SCHEMA IF NOT EXISTS ${this.schema}`);
      await client.query('CREATE TABLE IF NOT EXISTS schema_version (part text PRIMARY KEY, version integer NOT NULL)');
      const rows = (await client.query<{ version: number }>('SELECT version FROM schema_version WHERE part = $1', [part.name])).rows;
      let version = rows[0]?.version ?? 0;
      if (rows.length === 0) await client.query('INSERT INTO schema_version (part, version) VALUES ($1, 0)', [part.name]);
      if (version > migrations.length) {
        throw new PortbanditError(
          'PB_ERR_STORE',
          `the database's ${part.name} tables have schema version ${version}, newer than this portbandit understands (${migrations.length}); upgrade portbandit`,
          { where: this.where },
        );
      }
      for (; version < migrations.length; version++) await client.query(migrations[version]!);
      await client.query('UPDATE schema_version SET version = $1 WHERE part = $2', [version, part.name]);
    });
  }

  /** Run `work` in one transaction (READ COMMITTED), retrying on serialization failures and deadlocks. */
  async transaction<T>(work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      const client = await this.pool.connect();
      try {
        await client.query('BEGIN');
        const result = await work(client);
        await client.query('COMMIT');
        return result;
      } catch (error) {
        await client.query('ROLLBACK').catch(() => {});
        const code = (error as { code?: string }).code;
        if ((code === '40001' || code === '40P01') && attempt < 5) continue;
        throw error;
      } finally {
        client.release();
      }
    }
  }

  /** Map a failure to a PortbanditError (coded errors pass through). */
  wrap(error: unknown, what: string): PortbanditError {
    if (isPortbanditError(error)) return error;
    if (isOverload(error)) {
      return new PortbanditError(
        'PB_ERR_STORE_BUSY',
        `PostgreSQL store overloaded while ${what} (${this.where}): ${(error as Error)?.message ?? String(error)}`,
        { cause: error },
      );
    }
    return new PortbanditError(
      'PB_ERR_STORE',
      `PostgreSQL store failed while ${what} (${this.where}): ${(error as Error)?.message ?? String(error)}`,
      {
        cause: error,
      },
    );
  }

  /** A 64-bit advisory lock key for a name in this schema (advisory locks are per database, not per schema). */
  lockKey(name: string): string {
    return lockKey(`${this.schema}:${name}`);
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}

/**
 * A statement of the hot path, prepared once per connection (node-postgres names it; the server
 * parses and plans it once per connection instead of at every call). Only for fixed SQL text:
 * each name holds one text.
 */
export function prepared(name: string, text: string): (q: Queryable, values?: unknown[]) => Promise<pg.QueryResult> {
  return (q, values) => q.query({ name: `pb_${name}`, text, ...(values ? { values } : {}) });
}

/**
 * Point reads made together (the results of a batch, started in one turn; a lease batch's
 * queued hosts) answered by one `= ANY` query instead of one round trip each. DataLoader gathers
 * the reads made before the running promise jobs settle, without its cache, so every read sees
 * the database as it is. `load` gives the rows found by key; a key not found reads undefined, and
 * a failed query fails each read of its group with the same error.
 */
export function pointReads<K, V>(load: (keys: readonly K[]) => Promise<ReadonlyMap<K, V>>): (key: K) => Promise<V | undefined> {
  const loader = new DataLoader<K, V | undefined>(
    async (keys) => {
      const found = await load(keys);
      return keys.map((key) => found.get(key));
    },
    { cache: false, maxBatchSize: 1000 },
  );
  return (key) => loader.load(key);
}

/** The constraint a unique violation broke, or undefined for any other error. */
export function uniqueViolation(error: unknown): string | undefined {
  const e = error as { code?: string; constraint?: string };
  return e?.code === '23505' ? (e.constraint ?? '') : undefined;
}

/** A stable signed 64-bit key (decimal text) for pg_advisory_lock from a name. */
function lockKey(name: string): string {
  let h = 0xcbf29ce484222325n;
  for (const byte of Buffer.from(name, 'utf8')) h = ((h ^ BigInt(byte)) * 0x100000001b3n) & 0xffffffffffffffffn;
  return BigInt.asIntN(64, h).toString();
}

/** The URL without its password, for messages and logs. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return '(unparseable URL)';
  }
}
