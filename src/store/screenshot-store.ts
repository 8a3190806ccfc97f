import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { PortbanditError } from '../core/index.js';
import type { ScreenshotMeta } from './types.js';

/** One image to keep: a visit's (scanId) screenshot of one port. */
export interface NewScreenshot extends ScreenshotMeta {
  readonly scanId: string;
  readonly ip: string;
  readonly data: Buffer;
}

/** A stored screenshot's description (the gallery lists these). */
export interface StoredScreenshotInfo extends ScreenshotMeta {
  readonly scanId: string;
  readonly ip: string;
  readonly storedAt: number;
}

export interface StoredScreenshot extends StoredScreenshotInfo {
  readonly data: Buffer;
}

interface Row {
  scan_id: string;
  ip: string;
  port: number;
  scheme: 'http' | 'https';
  mime: 'image/png' | 'image/jpeg';
  width: number;
  height: number;
  title: string | null;
  bytes: number;
  stored_at: number;
  data?: Buffer;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS screenshots (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  scan_id TEXT NOT NULL, port INTEGER NOT NULL, ip TEXT NOT NULL,
  scheme TEXT NOT NULL, mime TEXT NOT NULL, width INTEGER NOT NULL, height INTEGER NOT NULL,
  title TEXT, bytes INTEGER NOT NULL, stored_at INTEGER NOT NULL, data BLOB NOT NULL,
  UNIQUE (scan_id, port)
);
CREATE INDEX IF NOT EXISTS screenshots_ip ON screenshots (ip, seq);
CREATE TABLE IF NOT EXISTS screenshot_total (id INTEGER PRIMARY KEY CHECK (id = 1), bytes INTEGER NOT NULL);
INSERT OR IGNORE INTO screenshot_total (id, bytes) SELECT 1, COALESCE(SUM(bytes), 0) FROM screenshots;
`;

const INFO_COLUMNS = 'scan_id, ip, port, scheme, mime, width, height, title, bytes, stored_at';

function infoOf(row: Row): StoredScreenshotInfo {
  return {
    scanId: row.scan_id,
    ip: row.ip,
    port: row.port,
    scheme: row.scheme,
    mime: row.mime,
    width: row.width,
    height: row.height,
    bytes: row.bytes,
    storedAt: row.stored_at,
    ...(row.title !== null ? { title: row.title } : {}),
  };
}

/**
 * Screenshot images in a SQLite file of their own (`<data>/screenshots.db`), beside whichever
 * store holds the scans (SQLite or Elasticsearch): blobs keyed by (scanId, port), and a total
 * size budget kept by dropping the oldest images first. A scan document keeps the metadata
 * (ScanDocument.screenshots); an image the budget dropped is simply gone (the UI says so).
 */
export class ScreenshotStore {
  private readonly db: Database.Database;
  private readonly stmt;

  private constructor(
    db: Database.Database,
    /** Largest total of stored image bytes; the oldest images go first when a put passes it. */
    readonly budgetBytes: number,
  ) {
    this.db = db;
    this.stmt = {
      upsert: db.prepare(`INSERT INTO screenshots (scan_id, port, ip, scheme, mime, width, height, title, bytes, stored_at, data)
        VALUES (@scanId, @port, @ip, @scheme, @mime, @width, @height, @title, @bytes, @storedAt, @data)
        ON CONFLICT (scan_id, port) DO UPDATE SET ip = excluded.ip, scheme = excluded.scheme, mime = excluded.mime, width = excluded.width,
          height = excluded.height, title = excluded.title, bytes = excluded.bytes, stored_at = excluded.stored_at, data = excluded.data`),
      sizeOf: db.prepare('SELECT bytes FROM screenshots WHERE scan_id = ? AND port = ?'),
      addTotal: db.prepare('UPDATE screenshot_total SET bytes = bytes + ? WHERE id = 1'),
      total: db.prepare('SELECT bytes FROM screenshot_total WHERE id = 1'),
      count: db.prepare('SELECT COUNT(*) AS n FROM screenshots'),
      oldest: db.prepare('SELECT seq, bytes FROM screenshots ORDER BY seq LIMIT 64'),
      drop: db.prepare('DELETE FROM screenshots WHERE seq = ?'),
      get: db.prepare(`SELECT ${INFO_COLUMNS}, data FROM screenshots WHERE scan_id = ? AND port = ?`),
      ofScan: db.prepare(`SELECT ${INFO_COLUMNS} FROM screenshots WHERE scan_id = ? ORDER BY port`),
      newest: db.prepare(`SELECT ${INFO_COLUMNS} FROM screenshots ORDER BY seq DESC LIMIT ? OFFSET ?`),
    };
  }

  /** Open (creating) the file at `path`, or an in-memory store for `:memory:`. */
  static open(path: string, budgetBytes: number): ScreenshotStore {
    if (!Number.isSafeInteger(budgetBytes) || budgetBytes < 0) {
      throw new PortbanditError('PB_ERR_CONFIG', `the screenshot budget must be a non-negative integer of bytes, got ${budgetBytes}`, {
        where: 'screenshotBudgetBytes',
      });
    }
    let db: Database.Database;
    try {
      if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
      db = new Database(path);
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = NORMAL');
      db.pragma('busy_timeout = 5000');
      db.exec(SCHEMA);
    } catch (cause) {
      throw new PortbanditError('PB_ERR_STORE', `cannot open the screenshot store: ${(cause as Error).message}`, { where: path, cause });
    }
    return new ScreenshotStore(db, budgetBytes);
  }

  /**
   * Store a visit's images (replacing any of the same scan and port), then drop the oldest
   * images until the total is within the budget, in one transaction. Returns how many were dropped.
   */
  put(shots: readonly NewScreenshot[], storedAt: number): { evicted: number } {
    return this.db.transaction(() => {
      for (const s of shots) {
        const before = this.stmt.sizeOf.get(s.scanId, s.port) as { bytes: number } | undefined;
        this.stmt.upsert.run({
          scanId: s.scanId,
          port: s.port,
          ip: s.ip,
          scheme: s.scheme,
          mime: s.mime,
          width: s.width,
          height: s.height,
          title: s.title ?? null,
          bytes: s.data.length,
          storedAt,
          data: s.data,
        });
        this.stmt.addTotal.run(s.data.length - (before?.bytes ?? 0));
      }
      let evicted = 0;
      let total = this.totalBytes();
      while (total > this.budgetBytes) {
        const victims = this.stmt.oldest.all() as Array<{ seq: number; bytes: number }>;
        if (victims.length === 0) break;
        for (const v of victims) {
          if (total <= this.budgetBytes) break;
          this.stmt.drop.run(v.seq);
          this.stmt.addTotal.run(-v.bytes);
          total -= v.bytes;
          evicted++;
        }
      }
      return { evicted };
    })();
  }

  get(scanId: string, port: number): StoredScreenshot | undefined {
    const row = this.stmt.get.get(scanId, port) as Row | undefined;
    return row ? { ...infoOf(row), data: row.data! } : undefined;
  }

  /** The stored images of one visit, by port. */
  ofScan(scanId: string): StoredScreenshotInfo[] {
    return (this.stmt.ofScan.all(scanId) as Row[]).map(infoOf);
  }

  /** Newest first (the gallery). */
  newest(limit: number, offset = 0): StoredScreenshotInfo[] {
    return (this.stmt.newest.all(limit, offset) as Row[]).map(infoOf);
  }

  count(): number {
    return (this.stmt.count.get() as { n: number }).n;
  }

  totalBytes(): number {
    return (this.stmt.total.get() as { bytes: number }).bytes;
  }

  close(): void {
    this.db.close();
  }
}
