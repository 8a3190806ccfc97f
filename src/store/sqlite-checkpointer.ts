import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

/**
 * WAL checkpoints on a worker thread. SQLite's automatic checkpoint runs inside the COMMIT that
 * crosses its threshold, on the thread that committed: with the coordinator's write rate that was
 * a 20-40 ms stall of the event loop every few hundred writes (the paced p99 of the load
 * benchmark) and ~15% of its CPU. A second connection on a worker thread runs PASSIVE checkpoints
 * (they never block the writer) every `intervalMs`. Durability is unchanged: commits go to the
 * WAL exactly as before; only where the copy into the database file runs moves.
 *
 * Resetting the WAL. SQLite starts the WAL over only when a write transaction begins with every
 * frame copied; a WAL written to while every pass runs grows without end. A RESTART checkpoint
 * forces it but holds the writer off meanwhile (BEGIN IMMEDIATE slept 18-37 ms in the benchmark).
 * Instead, once the WAL is long, the worker asks the writer to hold its next group commit
 * (`shouldDefer`: the writes wait a few ms, the event loop does not), copies what is left, and
 * lets go: the writer's next transaction then restarts the WAL itself. If the writer is idle or
 * the handshake stalls, nothing waits longer than MAX_DEFER_MS. The main connection keeps a much
 * higher automatic threshold as a backstop should the worker fail.
 */
export interface Checkpointer {
  /**
   * True while the worker asks the writer to hold its group commit (at most MAX_DEFER_MS from the
   * first deferral); calling it acknowledges the request, so the worker need not wait longer.
   */
  shouldDefer(now: number): boolean;
  /** Stop the worker (its connection closes; the main connection's close checkpoints the rest). */
  close(): Promise<void>;
}

/** The main connection's automatic checkpoint threshold (pages, 2 GiB) while a checkpointer runs: a backstop should the worker fail. */
export const BACKSTOP_CHECKPOINT_PAGES = 524_288;

/**
 * WAL length (pages, 1 GiB) from which the worker resets the WAL. Below it, the WAL restarts by
 * itself whenever a write begins just after a complete pass (common unless writes never pause); a
 * long but copied WAL costs disk space only (readers skip copied frames). The file keeps its
 * largest size until the store closes (the last connection's close removes it): truncating it at
 * each restart (`journal_size_limit`) stalled that commit ~470 ms for a 1 GiB file here.
 *
 * Why so long: the reset holds every write for the worker's last pass, and that pass is mostly
 * two fsyncs (WAL, then database file), 32-44 ms on this machine however few frames it copies.
 * Under the load benchmark's paced 538 pairs/s the WAL grows ~20 MB/s (each small commit
 * rewrites whole pages), so at 64 MiB that hold came every ~3 s and put ~1% of requests behind
 * it: getwork p99 at the server 51.6 ms vs 14.4 ms with no resets. At 1 GiB, about once in 50 s
 * at that rate (getwork p99 10.9 ms at the server in the same comparison).
 */
export const RESTART_PAGES = 262_144;

/** Longest a group commit is held for the worker's last pass, ms. */
export const MAX_DEFER_MS = 50;

// Shared flags: [0] = 1 while the worker asks the writer to hold, [1] = 1 once the writer has.
const ASK = 0;
const HELD = 1;

// CommonJS, evaluated by the worker: no loader or TypeScript needed there.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.module);
const db = new Database(workerData.file, { fileMustExist: true });
const flags = new Int32Array(workerData.flags);
let failures = 0;
const pass = () => db.pragma('wal_checkpoint(PASSIVE)')[0];
const timer = setInterval(() => {
  try {
    if (pass().log >= workerData.restartPages) {
      // Each pass copies what was committed while the previous one ran, a fraction of it: a few
      // more passes leave little enough for the writer to hold for. Then ask it to hold, wait
      // until it does (or a moment, if it is idle), copy the rest, let go.
      let last;
      for (let i = 0; i < 4; i++) {
        const t = performance.now();
        last = pass();
        if (performance.now() - t < workerData.maxDeferMs / 5) break;
      }
      // A reader (another process's long query) pins frames no pass can copy: holding the writer
      // would not reset the WAL then, so do not ask.
      if (last.checkpointed < last.log) return;
      Atomics.store(flags, ${HELD}, 0);
      Atomics.store(flags, ${ASK}, 1);
      Atomics.wait(flags, ${HELD}, 0, workerData.maxDeferMs / 2);
      try {
        pass();
      } finally {
        Atomics.store(flags, ${ASK}, 0);
      }
    }
    failures = 0;
  } catch (error) {
    Atomics.store(flags, ${ASK}, 0);
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
export function startCheckpointer(
  file: string,
  intervalMs: number,
  onError: (message: string) => void,
  restartPages = RESTART_PAGES,
): Checkpointer {
  const module = createRequire(import.meta.url).resolve('better-sqlite3');
  const flags = new Int32Array(new SharedArrayBuffer(8));
  const worker = new Worker(WORKER_SOURCE, {
    eval: true,
    workerData: { file, module, intervalMs, restartPages, maxDeferMs: MAX_DEFER_MS, flags: flags.buffer },
  });
  // Never keeps a process alive: a store someone forgot to close must not hang its exit.
  worker.unref();
  let closed: Promise<void> | undefined;
  let deferringSince: number | undefined;
  worker.on('message', (m: unknown) => {
    if (m === 'closed') void worker.terminate();
    else if (typeof m === 'object' && m !== null && 'error' in m) onError(String((m as { error: unknown }).error));
  });
  worker.on('error', (error) => onError(error.message));
  const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
  return {
    shouldDefer(now) {
      if (closed !== undefined || Atomics.load(flags, ASK) === 0) {
        deferringSince = undefined;
        return false;
      }
      deferringSince ??= now;
      if (now - deferringSince >= MAX_DEFER_MS) return false;
      Atomics.store(flags, HELD, 1);
      Atomics.notify(flags, HELD);
      return true;
    },
    close() {
      closed ??= (worker.postMessage('close'), exited);
      return closed;
    },
  };
}

/**
 * A checkpointer whose worker starts at the first `start()`: the store calls it on its first
 * group commit, so a store opened to read or to make a few writes (a CLI command, a test) never
 * pays for the thread (~40 ms of CPU each). Until then the caller keeps SQLite's own automatic
 * checkpoint (`begin` sets the backstop threshold just before the worker starts), so a write
 * that comes another way is checkpointed as SQLite always does.
 */
export function lazyCheckpointer(begin: () => Checkpointer): Checkpointer & { start(): void } {
  let started: Checkpointer | undefined;
  let closed = false;
  return {
    start() {
      if (started === undefined && !closed) started = begin();
    },
    shouldDefer(now) {
      return started?.shouldDefer(now) ?? false;
    },
    close() {
      closed = true;
      return started?.close() ?? Promise.resolve();
    },
  };
}
