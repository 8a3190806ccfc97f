import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

/**
 * WAL checkpoints on a worker thread. SQLite's automatic checkpoint runs inside the COMMIT that
 * crosses its threshold, on the thread that committed: with the coordinator's write rate that was
 * a 20-40 ms stall of the event loop every few hundred writes (the paced p99 of the load
 * benchmark) and ~15% of its CPU. A second connection on a worker thread runs PASSIVE
 * checkpoints (they never block the writer) every `intervalMs`. A WAL written to while every pass runs is never reset (SQLite restarts it
 * only when a write begins with every frame copied), so once it is long the worker ends with a
 * RESTART checkpoint: it copies the few frames committed meanwhile, holding the writer off for
 * that long (a few ms instead of a whole checkpoint; BEGIN IMMEDIATE waits for it). The main connection
 * keeps a much higher automatic threshold as a backstop should the worker fail. Durability is unchanged: commits still go to
 * the WAL exactly as before; only where the copy into the database file runs moves.
 */
export interface Checkpointer {
  /** Stop the worker (its connection closes; the main connection's close checkpoints the rest). */
  close(): Promise<void>;
}

/** The main connection's automatic checkpoint threshold (pages) while a checkpointer runs. */
export const BACKSTOP_CHECKPOINT_PAGES = 65_536;

/**
 * WAL length (pages, 64 MiB) from which the worker restarts the WAL. Below it, the WAL restarts
 * by itself whenever a write begins just after a complete pass (common unless writes never
 * pause); a long but copied WAL costs disk space only (readers skip copied frames).
 */
export const RESTART_PAGES = 16_384;

// CommonJS, evaluated by the worker: no loader or TypeScript needed there.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.module);
const db = new Database(workerData.file, { fileMustExist: true });
db.pragma('busy_timeout = 1000');
let failures = 0;
const timer = setInterval(() => {
  try {
    const [pass] = db.pragma('wal_checkpoint(PASSIVE)');
    if (pass.log >= workerData.restartPages) {
      // A long WAL: one more pass copies what was committed during the first, so that RESTART
      // (which holds the writer off while it runs) has next to nothing left to copy.
      db.pragma('wal_checkpoint(PASSIVE)');
      db.pragma('wal_checkpoint(RESTART)');
    }
    failures = 0;
  } catch (error) {
    // The main connection's backstop checkpoint keeps the WAL bounded meanwhile.
    if (++failures === 1) parentPort.postMessage({ error: String((error && error.message) || error) });
  }
}, workerData.intervalMs);
parentPort.on('message', () => {
  clearInterval(timer);
  db.close();
  parentPort.postMessage('closed');
});
`;

/** Start checkpointing `file` (a WAL database) on a worker thread every `intervalMs`. */
export function startCheckpointer(file: string, intervalMs: number, onError: (message: string) => void): Checkpointer {
  const module = createRequire(import.meta.url).resolve('better-sqlite3');
  const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { file, module, intervalMs, restartPages: RESTART_PAGES } });
  // Never keeps a process alive: a store someone forgot to close must not hang its exit.
  worker.unref();
  let closed: Promise<void> | undefined;
  worker.on('message', (m: unknown) => {
    if (m === 'closed') void worker.terminate();
    else if (typeof m === 'object' && m !== null && 'error' in m) onError(String((m as { error: unknown }).error));
  });
  worker.on('error', (error) => onError(error.message));
  const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
  return {
    close() {
      closed ??= (worker.postMessage('close'), exited);
      return closed;
    },
  };
}
