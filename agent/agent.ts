import { setTimeout as sleep } from 'node:timers/promises';
import type { WorkItem } from '../src/coordinator/protocol.js';
import { CoordinatorClient, RejectedError } from './coordinator-client.js';
import { type ScanConfig, scanBatch } from './scan-batch.js';

export interface AgentOptions {
  readonly server: string;
  readonly token: string;
  /** Work items leased and scanned together (shared preflight/nmap runs). */
  readonly concurrency: number;
  /** Stop after one batch (or as soon as there is no work). */
  readonly once: boolean;
  readonly scan: Omit<ScanConfig, 'signal'>;
  /** Backoff bounds when the coordinator is unreachable. */
  readonly backoff?: { readonly initialMs: number; readonly maxMs: number };
  /** Cap on the wait between polls when there is no work. */
  readonly idleMaxMs?: number;
}

export interface AgentStats {
  batches: number;
  submitted: number;
  refused: number;
  rejected: number;
  errors: number;
}

/**
 * A running agent: pull work, scan, submit, until stopped. `stop()` (SIGINT/SIGTERM) lets the
 * batch in flight finish and be submitted; `stop({ now: true })` (a second signal) cancels the
 * scanners, and the unfinished leases go back to the coordinator's queue when they expire.
 */
export class Agent {
  readonly stats: AgentStats = { batches: 0, submitted: 0, refused: 0, rejected: 0, errors: 0 };
  private readonly client: CoordinatorClient;
  private readonly options: AgentOptions;
  private readonly abort = new AbortController();
  private readonly wake = new AbortController();
  private stopping = false;

  constructor(options: AgentOptions) {
    this.options = options;
    this.client = new CoordinatorClient(options.server, options.token);
  }

  private log(line: string): void {
    this.options.scan.log(line);
  }

  /** Ask the loop to end after the current batch; with `now`, cancel running scanners too. */
  stop(opts: { now?: boolean } = {}): void {
    this.stopping = true;
    this.wake.abort();
    if (opts.now) this.abort.abort();
  }

  private async pause(ms: number): Promise<void> {
    try {
      await sleep(ms, undefined, { signal: this.wake.signal });
    } catch {
      // woken by stop()
    }
  }

  /** Lease up to `concurrency` items; stops early when the coordinator has nothing. */
  private async lease(): Promise<{ items: WorkItem[]; retryAfterMs: number }> {
    const items: WorkItem[] = [];
    let retryAfterMs = 0;
    while (items.length < this.options.concurrency && !this.stopping) {
      let res;
      try {
        res = await this.client.getWork();
      } catch (error) {
        // Keep what is already leased: scanning it beats letting the leases expire.
        if (items.length === 0) throw error;
        break;
      }
      if (!res.work) {
        retryAfterMs = res.retryAfterMs ?? 5000;
        break;
      }
      items.push(res.work);
    }
    return { items, retryAfterMs };
  }

  /** Run until stopped (or one batch with `once`). Resolves with the counters. */
  async run(): Promise<AgentStats> {
    const backoff = this.options.backoff ?? { initialMs: 1000, maxMs: 60_000 };
    let failures = 0;
    while (!this.stopping) {
      let items: WorkItem[] = [];
      let retryAfterMs = 0;
      try {
        ({ items, retryAfterMs } = await this.lease());
        failures = 0;
      } catch (error) {
        this.stats.errors++;
        failures++;
        const delay = Math.min(backoff.maxMs, backoff.initialMs * 2 ** (failures - 1));
        if (this.options.once && failures > 3) {
          this.log(`agent: ${(error as Error).message}; giving up (--once)`);
          break;
        }
        this.log(`agent: ${(error as Error).message}; retrying in ${delay} ms`);
        await this.pause(delay);
        continue;
      }
      if (items.length === 0) {
        if (this.options.once) break;
        await this.pause(Math.min(retryAfterMs, this.options.idleMaxMs ?? 30_000));
        continue;
      }
      await this.runBatch(items);
      if (this.options.once) break;
    }
    this.log(`agent: stopped (${this.stats.submitted} results submitted, ${this.stats.refused} refused, ${this.stats.rejected} rejected)`);
    return this.stats;
  }

  private async runBatch(items: WorkItem[]): Promise<void> {
    this.stats.batches++;
    this.log(`agent: scanning ${items.length} work item(s): ${items.map((i) => `${i.ip} (${i.ports.length} ports)`).join(', ')}`);
    let outcome;
    try {
      outcome = await scanBatch(items, { ...this.options.scan, signal: this.abort.signal });
    } catch (error) {
      this.stats.errors++;
      this.log(`agent: batch failed: ${(error as Error).message} (its leases return to the queue when they expire)`);
      return;
    }
    for (const r of outcome.refused) {
      this.stats.refused++;
      this.log(`agent: refused ${r.item.ip}: ${r.reason}`);
    }
    for (const result of outcome.submissions) {
      // Results are worth retrying through a coordinator outage, until the lease deadline.
      const deadline = items.find((i) => i.leaseId === result.leaseId)?.deadline ?? Date.now();
      let failures = 0;
      for (;;) {
        try {
          const res = await this.client.submit(result);
          this.stats.submitted++;
          this.log(`agent: ${result.ip}: ${result.ports.length} open port(s) via ${result.preflight}${res.followUp ? ', follow-up queued' : ''}`);
          break;
        } catch (error) {
          if (error instanceof RejectedError) {
            this.stats.rejected++;
            this.log(`agent: result for ${result.ip} rejected: ${error.message}`);
            break;
          }
          failures++;
          const delay = Math.min(this.options.backoff?.maxMs ?? 60_000, (this.options.backoff?.initialMs ?? 1000) * 2 ** (failures - 1));
          if (Date.now() + delay > deadline || this.abort.signal.aborted) {
            this.stats.errors++;
            this.log(`agent: giving up on the result for ${result.ip}: ${(error as Error).message}`);
            break;
          }
          this.log(`agent: submitting ${result.ip} failed (${(error as Error).message}); retrying in ${delay} ms`);
          await sleep(delay);
        }
      }
    }
  }
}
