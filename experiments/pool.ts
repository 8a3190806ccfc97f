import { Worker } from 'node:worker_threads';
import { type ErrorCode, PortbanditError } from '../src/core/index.js';
import type { CellResult, CellSpec } from './types.js';

export interface WorkerRequest {
  readonly id: number;
  readonly key: string;
  readonly cell: CellSpec;
}

export type WorkerReply =
  | { readonly id: number; readonly ok: true; readonly result: CellResult }
  | { readonly id: number; readonly ok: false; readonly error: { message: string; code: ErrorCode | null; stack: string } };

/**
 * Start a cell worker. From dist/ (the CLI) the worker is plain JS. From the TypeScript sources
 * (vitest, tsx) it is .ts: Node 20 ignores `--import tsx` in a worker's execArgv, so a small
 * bootstrap registers tsx's loader inside the worker and then imports the worker module.
 */
export function startWorker(): Worker {
  const ts = import.meta.url.endsWith('.ts');
  const url = new URL(ts ? './worker.ts' : './worker.js', import.meta.url);
  if (!ts) return new Worker(url);
  const bootstrap = `import('tsx/esm/api').then((tsx) => { tsx.register(); return import(${JSON.stringify(url.href)}); })`;
  return new Worker(bootstrap, { eval: true });
}

interface Slot {
  readonly worker: Worker;
  busy: { request: WorkerRequest; resolve: (r: CellResult) => void; reject: (e: unknown) => void } | null;
}

/** A fixed pool of cell workers fed from one queue. */
export class WorkerPool {
  private readonly slots: Slot[] = [];
  private readonly queue: { request: WorkerRequest; resolve: (r: CellResult) => void; reject: (e: unknown) => void }[] = [];
  private nextId = 0;
  private closed = false;

  constructor(size: number) {
    for (let i = 0; i < size; i++) {
      const worker = startWorker();
      const slot: Slot = { worker, busy: null };
      worker.on('message', (reply: WorkerReply) => this.onReply(slot, reply));
      worker.on('error', (error) => this.onCrash(slot, error));
      worker.on('exit', (code) => {
        if (!this.closed) this.onCrash(slot, new Error(`worker exited with code ${code}`));
      });
      this.slots.push(slot);
    }
  }

  /** Run one cell on the next free worker. */
  run(cell: CellSpec, key: string): Promise<CellResult> {
    if (this.closed) return Promise.reject(new PortbanditError('PB_ERR_EXPERIMENT', 'the worker pool is closed'));
    return new Promise((resolve, reject) => {
      this.queue.push({ request: { id: this.nextId++, key, cell }, resolve, reject });
      this.dispatch();
    });
  }

  private dispatch(): void {
    for (const slot of this.slots) {
      if (slot.busy !== null) continue;
      const job = this.queue.shift();
      if (job === undefined) return;
      slot.busy = job;
      slot.worker.postMessage(job.request);
    }
  }

  private onReply(slot: Slot, reply: WorkerReply): void {
    const job = slot.busy;
    slot.busy = null;
    if (job !== null) {
      if (reply.ok) job.resolve(reply.result);
      else {
        const where = `${job.request.cell.recording.name}/${job.request.cell.strategy.label}/budget ${job.request.cell.budget}/seed ${job.request.cell.seed}`;
        const error =
          reply.error.code !== null
            ? new PortbanditError(reply.error.code, reply.error.message)
            : new PortbanditError('PB_ERR_EXPERIMENT', `cell failed: ${reply.error.message}\n${reply.error.stack}`, { where });
        job.reject(error);
      }
    }
    this.dispatch();
  }

  private onCrash(slot: Slot, error: Error): void {
    const job = slot.busy;
    slot.busy = null;
    if (job !== null) job.reject(new PortbanditError('PB_ERR_EXPERIMENT', `a cell worker crashed: ${error.message}`, { cause: error }));
    // Fail everything still queued: a crashed worker usually means every worker will crash.
    this.closed = true;
    for (const j of this.queue.splice(0))
      j.reject(new PortbanditError('PB_ERR_EXPERIMENT', `a cell worker crashed: ${error.message}`, { cause: error }));
  }

  /** Stop every worker; queued cells are rejected. */
  async close(): Promise<void> {
    this.closed = true;
    for (const j of this.queue.splice(0)) j.reject(new PortbanditError('PB_ERR_EXPERIMENT', 'the run was stopped'));
    await Promise.all(this.slots.map((s) => s.worker.terminate()));
    for (const s of this.slots) {
      if (s.busy !== null) s.busy.reject(new PortbanditError('PB_ERR_EXPERIMENT', 'the run was stopped'));
      s.busy = null;
    }
  }
}
