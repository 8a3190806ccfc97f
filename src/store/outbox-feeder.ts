import { randomInt } from 'node:crypto';
import type { CoordinationStore, OutboxRecord } from './types.js';

/** Where the feeder reads: the coordination store's outbox and its roles. */
export type OutboxSource = Pick<CoordinationStore, 'readOutbox' | 'ackOutbox' | 'countOutbox' | 'holdRole'>;

/** Where the feeder writes: a search index that applies outbox records idempotently. */
export interface OutboxTarget {
  applyOutbox(records: readonly OutboxRecord[]): Promise<void>;
}

export interface OutboxFeederOptions {
  /** Records per `_bulk` batch (default 500). */
  readonly batchSize?: number;
  /** How long an empty outbox waits before looking again, unless `wake` is called (default 1,000 ms). */
  readonly idleMs?: number;
  /** Backoff after a failed batch: about `baseDelayMs` (default 250) doubled per failure in a row, at most `maxDelayMs` (default 30,000), with jitter. */
  readonly retry?: { readonly baseDelayMs?: number; readonly maxDelayMs?: number };
  /** The role one feeder per deployment holds (default `index-feeder`): several coordinators on PostgreSQL elect one. */
  readonly role?: string;
  /** Told about failures (the first of a run, then every 10th) and recoveries. */
  readonly log?: (level: 'warn' | 'info', message: string, error?: unknown) => void;
}

/** What /metrics and /healthz show of the feeder. */
export interface OutboxFeederStatus {
  /** This process holds the feeder role (the elected feeder). */
  readonly active: boolean;
  /** Records applied and acknowledged since start. */
  readonly fed: number;
  /** Batches that failed since start (each is retried). */
  readonly failures: number;
  /** Failures in a row (0 once a batch went through). */
  readonly failing: number;
  readonly lastError?: string;
}

/**
 * Carries the coordination store's outbox into the search index: reads a batch (oldest first),
 * applies it (`applyOutbox`: one `_bulk`, 429s re-sent inside), and only then acknowledges it.
 * A failed batch (429s past the index's own retries, connection errors, refusals) is not
 * acknowledged and is tried again after a backoff; a feeder killed anywhere in between leaves
 * its records in the outbox, and the next feeder replays them (the index applies them
 * idempotently). Runs only while it holds the feeder role, so a deployment has one feeder and
 * records are applied in outbox order.
 */
export class OutboxFeeder {
  private readonly batchSize: number;
  private readonly idleMs: number;
  private readonly baseDelayMs: number;
  private readonly maxDelayMs: number;
  private readonly role: string;
  private running = false;
  private loop: Promise<void> | undefined;
  private wakeUp: (() => void) | undefined;
  /** A wake that came while a batch was in flight: the next idle wait is skipped. */
  private woken = false;
  private timer: NodeJS.Timeout | undefined;
  private state = { active: false, fed: 0, failures: 0, failing: 0, lastError: undefined as string | undefined };

  constructor(
    private readonly source: OutboxSource,
    private readonly target: OutboxTarget,
    private readonly options: OutboxFeederOptions = {},
  ) {
    this.batchSize = options.batchSize ?? 500;
    this.idleMs = options.idleMs ?? 1000;
    this.baseDelayMs = options.retry?.baseDelayMs ?? 250;
    this.maxDelayMs = options.retry?.maxDelayMs ?? 30_000;
    this.role = options.role ?? 'index-feeder';
  }

  status(): OutboxFeederStatus {
    const { lastError, ...rest } = this.state;
    return { ...rest, ...(lastError !== undefined ? { lastError } : {}) };
  }

  /** Records waiting in the outbox. */
  depth(): Promise<number> {
    return this.source.countOutbox();
  }

  /** Start feeding in the background (`stop` ends it). */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.loop = this.run();
  }

  /** Something was written: look at the outbox now instead of after the idle wait. */
  wake(): void {
    if (this.wakeUp) this.wakeUp();
    else this.woken = true;
  }

  /** Stop after the batch in flight (if any); unacknowledged records stay for the next start. */
  async stop(): Promise<void> {
    this.running = false;
    this.wake();
    await this.loop;
    this.loop = undefined;
  }

  /**
   * One batch: read, apply, acknowledge. Returns how many records went (0: the outbox is empty
   * or another process holds the role). Throws what the index threw, acknowledging nothing.
   */
  async feedOnce(): Promise<number> {
    this.state.active = await this.source.holdRole(this.role);
    if (!this.state.active) return 0;
    const records = await this.source.readOutbox(this.batchSize);
    if (records.length === 0) return 0;
    await this.target.applyOutbox(records);
    await this.source.ackOutbox(records.map((r) => r.id));
    this.state.fed += records.length;
    return records.length;
  }

  /** Feed until the outbox is empty (tests, tools); throws on the first failed batch. */
  async drain(): Promise<number> {
    let total = 0;
    for (let n = await this.feedOnce(); n > 0; n = await this.feedOnce()) total += n;
    return total;
  }

  private async run(): Promise<void> {
    while (this.running) {
      let wait: number;
      this.woken = false;
      try {
        const n = await this.feedOnce();
        if (this.state.failing > 0) this.options.log?.('info', `search index feed recovered after ${this.state.failing} failed attempt(s)`);
        this.state.failing = 0;
        wait = n === this.batchSize || this.woken ? 0 : this.idleMs;
      } catch (error) {
        this.state.failures++;
        this.state.failing++;
        this.state.lastError = (error as Error)?.message ?? String(error);
        if (this.state.failing === 1 || this.state.failing % 10 === 0) {
          this.options.log?.(
            'warn',
            `search index feed failed (${this.state.failing} in a row; the records stay in the outbox and are retried): ${this.state.lastError}`,
            error,
          );
        }
        const delay = Math.min(this.maxDelayMs, this.baseDelayMs * 2 ** Math.min(this.state.failing - 1, 20));
        // Jitter so feeders that failed together do not come back together.
        wait = delay / 2 + randomInt(Math.floor(delay / 2) + 1);
      }
      if (wait > 0 && this.running) await this.sleep(wait, this.state.failing === 0);
    }
  }

  /** Wait `ms`; an idle wait (not a backoff) ends early on `wake`. */
  private sleep(ms: number, wakeable: boolean): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(this.timer);
        this.wakeUp = undefined;
        resolve();
      };
      this.timer = setTimeout(done, ms);
      this.timer.unref?.();
      this.wakeUp = wakeable || !this.running ? done : () => (this.running ? undefined : done());
    });
  }
}
