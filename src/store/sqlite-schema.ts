import type Database from 'better-sqlite3';
import { PortbanditError } from '../core/index.js';

/**
 * SQLite schema migrations, applied in order and tracked by `PRAGMA user_version`. Append a new
 * entry to change the schema; never edit an applied one (existing databases would not see it).
 */
const MIGRATIONS: ReadonlyArray<string | ((db: Database.Database) => void)> = [
  // 1: initial layout (docs/store.md explains each table)
  `
  CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
  INSERT INTO meta (key, value) VALUES ('scope_version', 0);

  CREATE TABLE scope_entries (
    list TEXT NOT NULL, range TEXT NOT NULL, tags TEXT NOT NULL, added_at INTEGER NOT NULL,
    PRIMARY KEY (list, range)
  ) WITHOUT ROWID;

  CREATE TABLE documents (
    collection TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
    revision INTEGER NOT NULL, updated_at INTEGER NOT NULL,
    PRIMARY KEY (collection, key)
  ) WITHOUT ROWID;

  CREATE TABLE agents (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, token_hash TEXT NOT NULL UNIQUE, version TEXT,
    created_at INTEGER NOT NULL, last_seen_at INTEGER, counters TEXT NOT NULL
  );

  CREATE TABLE admin_tokens (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, token_hash TEXT NOT NULL UNIQUE, created_at INTEGER NOT NULL
  );

  CREATE TABLE leases (
    id TEXT PRIMARY KEY, ip TEXT NOT NULL, agent_id TEXT NOT NULL, deadline INTEGER NOT NULL, doc TEXT NOT NULL
  );
  CREATE INDEX leases_deadline ON leases (deadline, id);
  CREATE INDEX leases_agent ON leases (agent_id, deadline);
  CREATE INDEX leases_ip ON leases (ip);

  CREATE TABLE work_queue (seq INTEGER PRIMARY KEY AUTOINCREMENT, doc TEXT NOT NULL);

  CREATE TABLE scans (
    row INTEGER PRIMARY KEY, scan_id TEXT NOT NULL UNIQUE, ip TEXT NOT NULL, ip_key BLOB NOT NULL,
    finished_at INTEGER NOT NULL, words TEXT NOT NULL, doc TEXT NOT NULL
  );
  CREATE INDEX scans_host ON scans (ip_key, finished_at DESC, scan_id DESC);
  CREATE INDEX scans_time ON scans (finished_at, scan_id);

  -- searchable facets: field in (port, service, product, version, cpe, script, tag, agent)
  CREATE TABLE scan_terms (
    field TEXT NOT NULL, value TEXT NOT NULL, scan_row INTEGER NOT NULL,
    PRIMARY KEY (field, value, scan_row)
  ) WITHOUT ROWID;
  CREATE INDEX scan_terms_row ON scan_terms (scan_row, field);

  CREATE TABLE latest (
    ip_key BLOB PRIMARY KEY, scan_row INTEGER NOT NULL UNIQUE, finished_at INTEGER NOT NULL, scan_id TEXT NOT NULL
  ) WITHOUT ROWID;
  CREATE INDEX latest_time ON latest (finished_at DESC, scan_id DESC);

  CREATE TABLE events (seq INTEGER PRIMARY KEY AUTOINCREMENT, doc TEXT NOT NULL);
  `,
  // 2: the searchable facets of latest-per-host only, keyed by host, so latest searches and
  // statistics scale with the number of hosts, not with the length of history.
  `
  CREATE TABLE latest_terms (
    field TEXT NOT NULL, value TEXT NOT NULL, ip_key BLOB NOT NULL,
    PRIMARY KEY (field, value, ip_key)
  ) WITHOUT ROWID;
  CREATE INDEX latest_terms_host ON latest_terms (ip_key);
  INSERT INTO latest_terms (field, value, ip_key)
    SELECT t.field, t.value, l.ip_key FROM latest l JOIN scan_terms t ON t.scan_row = l.scan_row;
  `,
  // 3: one scan document per host visit. Older versions stored each follow-up round as a scan of
  // its own (carrying the earlier rounds' ports), so a visit's rounds share ip, epoch and
  // startedAt; the last holds the union. Each such group becomes one document under the first
  // round's id, with the last round's content, `rounds` listing every round, events re-pointed.
  mergeFollowUpRounds,
  // 4: finished visits waiting for the elected learner (IngestInput.learn; used by stores that
  // several coordinators share, kept here so every Store has one contract).
  `CREATE TABLE IF NOT EXISTS learning_queue (seq INTEGER PRIMARY KEY AUTOINCREMENT, doc TEXT NOT NULL);`,
  // 5: what a separate search index (Elasticsearch) has still to receive (CoordinationStore.readOutbox)
  `CREATE TABLE IF NOT EXISTS outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, doc TEXT NOT NULL);`,
  // 6: the work queue is served by class, then in order (src/store/queue-priority.ts): visits
  // under way (follow-up rounds, expired leases) 0, manual rescans 1, the cycle 2. Items queued
  // before get their class from their reason.
  queuePriorities,
];

/** The schema version this code writes. */
export const SCHEMA_VERSION = MIGRATIONS.length;

/**
 * Bring a database up to SCHEMA_VERSION (or `target`: tests build a database of an older
 * version this way), each migration in its own transaction.
 */
export function migrateSqlite(db: Database.Database, file: string, target = SCHEMA_VERSION): void {
  const current = db.pragma('user_version', { simple: true }) as number;
  if (current > SCHEMA_VERSION) {
    throw new PortbanditError(
      'PB_ERR_STORE',
      `the database has schema version ${current}, newer than this portbandit understands (${SCHEMA_VERSION}); upgrade portbandit`,
      { where: file },
    );
  }
  for (let version = current; version < Math.min(target, SCHEMA_VERSION); version++) {
    db.transaction(() => {
      const migration = MIGRATIONS[version]!;
      if (typeof migration === 'string') db.exec(migration);
      else migration(db);
      db.pragma(`user_version = ${version + 1}`);
    })();
  }
}

/** Migration 3 (see MIGRATIONS): fold each visit's follow-up round scans into its first. */
function mergeFollowUpRounds(db: Database.Database): void {
  const groups = db
    .prepare(
      `SELECT ip_key, json_extract(doc, '$.epoch') AS epoch, json_extract(doc, '$.startedAt') AS started
       FROM scans GROUP BY ip_key, epoch, started HAVING COUNT(*) > 1`,
    )
    .all() as Array<{ ip_key: Buffer; epoch: number; started: number }>;
  const rowsOf = db.prepare(
    `SELECT row, scan_id, finished_at, doc FROM scans
     WHERE ip_key = ? AND json_extract(doc, '$.epoch') = ? AND json_extract(doc, '$.startedAt') = ? ORDER BY finished_at, row`,
  );
  const updateFirst = db.prepare(
    'UPDATE scans SET finished_at = ?, words = (SELECT words FROM scans WHERE row = ?), doc = ? WHERE row = ?',
  );
  const dropTerms = db.prepare('DELETE FROM scan_terms WHERE scan_row = ?');
  const moveTerms = db.prepare('UPDATE scan_terms SET scan_row = ? WHERE scan_row = ?');
  const dropScan = db.prepare('DELETE FROM scans WHERE row = ?');
  const repointLatest = db.prepare('UPDATE latest SET scan_row = ?, finished_at = ?, scan_id = ? WHERE scan_row = ?');
  const repointEvents = db.prepare(`UPDATE events SET doc = json_set(doc, '$.scanId', ?) WHERE json_extract(doc, '$.scanId') = ?`);
  for (const g of groups) {
    const rows = rowsOf.all(g.ip_key, g.epoch, g.started) as Array<{ row: number; scan_id: string; finished_at: number; doc: string }>;
    const first = rows[0]!;
    const last = rows[rows.length - 1]!;
    const merged = { ...(JSON.parse(last.doc) as Record<string, unknown>), scanId: first.scan_id, rounds: rows.map((r) => r.scan_id) };
    updateFirst.run(last.finished_at, last.row, JSON.stringify(merged), first.row);
    dropTerms.run(first.row);
    moveTerms.run(first.row, last.row);
    for (const r of rows.slice(1)) {
      dropTerms.run(r.row);
      repointLatest.run(first.row, last.finished_at, first.scan_id, r.row);
      repointEvents.run(first.scan_id, r.scan_id);
      dropScan.run(r.row);
    }
  }
}

/** Migration 6 (see MIGRATIONS): the work queue's class column, filled from each item's reason. */
function queuePriorities(db: Database.Database): void {
  // Idempotent, as the CREATE ... IF NOT EXISTS migrations are: a database whose version was set
  // back (tests do) runs it again.
  const columns = db.prepare('SELECT name FROM pragma_table_info(?)').all('work_queue') as Array<{ name: string }>;
  if (!columns.some((c) => c.name === 'priority')) db.exec('ALTER TABLE work_queue ADD COLUMN priority INTEGER NOT NULL DEFAULT 2');
  db.exec(`
    UPDATE work_queue SET priority = CASE json_extract(doc, '$.reason') WHEN 'followup' THEN 0 WHEN 'expired' THEN 0 WHEN 'manual' THEN 1 ELSE 2 END;
    CREATE INDEX IF NOT EXISTS work_queue_order ON work_queue (priority, seq);
  `);
}
