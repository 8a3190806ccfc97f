import Database from 'better-sqlite3';
import { existsSync, renameSync, rmSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import { PortbanditError } from '../core/index.js';

/**
 * A consistent copy of a SQLite file that may be in use: `VACUUM INTO` reads one snapshot (a
 * single read transaction) and writes a compacted file. In WAL mode a reader never blocks the
 * writer, so a running coordinator goes on storing results meanwhile; what it commits after the
 * snapshot began is not in the copy. SQLite's page-by-page backup API was not used: it starts
 * over whenever another connection writes to the source, which a busy coordinator does every few
 * milliseconds.
 *
 * The statement runs on a worker thread, so the caller can report progress (the copy's size,
 * against the source's) while it runs.
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.module);
try {
  const db = new Database(workerData.source, { readonly: true, fileMustExist: true });
  try {
    db.prepare('VACUUM INTO ?').run(workerData.target);
  } finally {
    db.close();
  }
  parentPort.postMessage({ ok: true });
} catch (error) {
  parentPort.postMessage({ ok: false, message: String((error && error.message) || error) });
}
`;

export interface SqliteBackupProgress {
  /** Bytes of the copy written so far. */
  readonly bytes: number;
  /** The source's size (database file plus its WAL): the copy is at most about this large. */
  readonly sourceBytes: number;
}

export interface SqliteBackupResult {
  /** The copy's size in bytes. */
  readonly bytes: number;
  /** How long the copy and its check took, ms. */
  readonly ms: number;
}

/** The size of a SQLite file with its WAL (the pages a copy may read). */
function sqliteBytes(file: string): number {
  const size = (f: string) => (existsSync(f) ? statSync(f).size : 0);
  return size(file) + size(`${file}-wal`);
}

/**
 * Copy the SQLite database `source` to `target` (which must not exist): written to
 * `<target>.partial`, checked (`PRAGMA quick_check`), then renamed, so `target` is only ever a
 * complete, checked copy. `onProgress` hears the copy's size about every `progressMs`.
 * Failures are `PB_ERR_STORE` naming the file.
 */
export async function backupSqliteFile(
  source: string,
  target: string,
  options: { readonly onProgress?: (p: SqliteBackupProgress) => void; readonly progressMs?: number } = {},
): Promise<SqliteBackupResult> {
  if (!existsSync(source)) throw new PortbanditError('PB_ERR_STORE', `no SQLite file at ${source}`, { where: source });
  if (existsSync(target))
    throw new PortbanditError('PB_ERR_STORE', `${target} exists; a backup never overwrites a file`, { where: target });
  const started = performance.now();
  const partial = `${target}.partial`;
  rmSync(partial, { force: true });
  const sourceBytes = sqliteBytes(source);
  const worker = new Worker(WORKER_SOURCE, {
    eval: true,
    workerData: { module: createRequire(import.meta.url).resolve('better-sqlite3'), source, target: partial },
  });
  const tick = setInterval(() => {
    options.onProgress?.({ bytes: existsSync(partial) ? statSync(partial).size : 0, sourceBytes });
  }, options.progressMs ?? 2000);
  try {
    const outcome = await new Promise<{ ok: boolean; message?: string }>((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
      worker.once('exit', (code) => reject(new Error(`the copying thread exited (code ${code}) before it finished`)));
    });
    if (!outcome.ok) throw new Error(outcome.message);
    checkCopy(partial);
  } catch (error) {
    rmSync(partial, { force: true });
    if (error instanceof PortbanditError) throw error;
    throw new PortbanditError('PB_ERR_STORE', `copying ${source}: ${(error as Error).message}`, { where: source });
  } finally {
    clearInterval(tick);
    await worker.terminate();
  }
  renameSync(partial, target);
  return { bytes: statSync(target).size, ms: performance.now() - started };
}

/** SQLite's own consistency check of a copy (`quick_check`: every page, index and constraint, in O(N)). */
function checkCopy(file: string): void {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    const rows = db.pragma('quick_check') as { quick_check: string }[];
    const problems = rows.map((r) => r.quick_check).filter((r) => r !== 'ok');
    if (problems.length > 0) {
      throw new PortbanditError('PB_ERR_STORE', `the copy failed SQLite's check: ${problems.slice(0, 3).join('; ')}`, { where: file });
    }
  } finally {
    db.close();
  }
}
