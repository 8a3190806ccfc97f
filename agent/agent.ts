import { MAX_RELEASE_BATCH, MAX_WORK_BATCH, type PreflightRequest, type ResultSubmission, type WorkItem } from '../src/protocol/index.js';
import { CoordinatorClient, RejectedError, retryDelayMs } from './coordinator-client.js';
import { reportRefusal } from './refusal.js';
import { describeLeased, nameSome, portCountOf } from './work-item.js';
import { ResultBatcher } from './result-batcher.js';
import { type HostOutcome, type ScanConfig, ScanPipeline, choosePreflight, masscanOverheadMs, preflightRetries } from './scan-batch.js';

/**
 * Wait `ms`, or until `signal` aborts (then reject). The global `setTimeout`, not
 * `node:timers/promises`, so that tests can drive the agent's back-off with fake timers.
 */
function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** After a slot frees, how long the agent waits for others before asking for work. */
const LEASE_GATHER_MS = 200;

/** Longest a finished host's result waits for others to share its request. */
const RESULT_FLUSH_MS = 100;

/** Results that are sent at once, without waiting for RESULT_FLUSH_MS. */
const RESULT_FLUSH_AT = 16;

/**
 * Share of a lease that the preflight work an agent holds may take at its rates; the rest is for
 * nmap, screenshots, submitting, and runs waiting for a masscan slot.
 */
export const BACKLOG_SHARE_OF_LEASE = 0.5;

/**
 * How many items to ask for: the free slots, unless the preflight work already held (`backlog`,
 * in seconds at the agent's rates) would take longer than its share of a lease (`capacity`):
 * then as many items of the last cost seen (`itemCost`) as fit, and none when nothing fits
 * (wait for work to drain). An agent holding nothing always asks, so an item larger than the
 * capacity is still scanned (its preflight then probes what fits before the deadline and reports
 * the rest unknown).
 */
export function leaseAllowance(o: { free: number; backlog: number; capacity: number; itemCost: number; holding: boolean }): number {
  if (o.free <= 0) return 0;
  if (!Number.isFinite(o.capacity)) return o.free;
  const room = o.capacity - o.backlog;
  if (room <= 0) return o.holding ? 0 : 1;
  if (o.itemCost <= 0) return o.free;
  return Math.max(1, Math.min(o.free, Math.floor(room / o.itemCost)));
}

export interface AgentOptions {
  /** The coordinator, or several sharing one store: the next is used when one does not answer. */
  readonly server: string | readonly string[];
  readonly token: string;
  /** Work items held at once (leased, scanning or submitting): the agent's slots. */
  readonly concurrency: number;
  /** Stop after one lease burst is scanned (or as soon as there is no work). */
  readonly once: boolean;
  readonly scan: Omit<ScanConfig, 'signal'>;
  /** Backoff bounds when the coordinator is unreachable. */
  readonly backoff?: { readonly initialMs: number; readonly maxMs: number };
  /** Cap on the wait between polls when there is no work. */
  readonly idleMaxMs?: number;
}

export interface AgentStats {
  /** Lease bursts: free slots filled together (one request each where the coordinator leases in batches). */
  batches: number;
  submitted: number;
  refused: number;
  rejected: number;
  /** Work lost: scanning batches that failed, results given up on at their lease's deadline, leases given up (--once). */
  errors: number;
  /** Requests to the coordinator that failed and were tried again (unreachable, 5xx, 503): nothing lost by them. */
  retries: number;
  /** Batches whose scanning a cancel (a second SIGTERM) cut short: not errors; their leases go back. */
  cancelled: number;
}

/**
 * A running agent: keep `concurrency` slots full of work, scan, and submit each host's result
 * as soon as that host is done (within 100 ms: results finished together share a request). New
 * work is leased as soon as a slot frees (the free slots' worth in one request), while slow hosts
 * finish in the other slots; one slow host never delays another's result. `stop()`
 * (SIGINT/SIGTERM) stops leasing and lets the hosts in flight finish and be submitted;
 * `stop({ now: true })` (a second signal) cancels the scanners, and the unfinished leases are
 * given back: the coordinator queues them again at once (one that cannot take them lets them
 * expire).
 */
export class Agent {
  readonly stats: AgentStats = { batches: 0, submitted: 0, refused: 0, rejected: 0, errors: 0, retries: 0, cancelled: 0 };
  private readonly client: CoordinatorClient;
  private readonly options: AgentOptions;
  private readonly abort = new AbortController();
  /**
   * Leases of the items in flight, and, once the scanners are cancelled (a second stop signal),
   * of those left unfinished: given back as the agent stops. An item that leaves flight otherwise
   * (submitted, refused, or given up on while running on) is dropped: its lease is taken or expires.
   */
  private readonly unfinished = new Set<string>();
  private readonly wake = new AbortController();
  private readonly pipeline: ScanPipeline;
  private stopping = false;
  private inFlight = 0;
  private readonly tasks = new Set<Promise<void>>();
  /** Resolves the current wait for a free slot. */
  private slotFreed: (() => void) | undefined;
  /** False once the coordinator refused `max` (older than batched leases): one item per request. */
  private batchLeases = true;
  private readonly results: ResultBatcher;
  /** Seconds of preflight of the items held (by lease id), and their sum: the agent's backlog. */
  private readonly heldCost = new Map<string, number>();
  private backlog = 0;
  /** The longest lease seen (deadline - issuedAt), ms: 0 until the first item. */
  private leaseMs = 0;
  /** Seconds of preflight of the last item leased (the size the next ones are likely to have). */
  private itemCost = 0;
  private backlogLogged = false;

  constructor(options: AgentOptions) {
    this.options = options;
    this.client = new CoordinatorClient(options.server, options.token, undefined, (from, to, reason) =>
      this.log(`agent: ${from} did not answer (${reason}); using ${to}`),
    );
    this.pipeline = new ScanPipeline({ ...options.scan, signal: this.abort.signal });
    this.results = new ResultBatcher({
      client: this.client,
      flushMs: RESULT_FLUSH_MS,
      flushAt: RESULT_FLUSH_AT,
      log: (line) => this.log(line),
    });
  }

  /**
   * Results that failed together (one batch request) are logged as one line, named like a lease
   * (a coordinator down for a minute made one line per result per attempt: 38 lines for 7 hosts).
   */
  private readonly failedSubmits = new Map<string, { message: string; delay: number; ips: string[] }>();

  private logRetry(ip: string, message: string, delay: number): void {
    const key = `${delay} ${message}`;
    let group = this.failedSubmits.get(key);
    if (group === undefined) {
      this.failedSubmits.set(key, (group = { message, delay, ips: [] }));
      // A batch's answers all arrive in one turn of the event loop: log after it.
      setImmediate(() => {
        this.failedSubmits.delete(key);
        const { ips } = group!;
        const what = ips.length === 1 ? ips[0]! : `${ips.length} results (${nameSome(ips)})`;
        this.log(`agent: submitting ${what} failed (${group!.message}); retrying in ${group!.delay} ms`);
      });
    }
    group.ips.push(ip);
  }

  private log(line: string): void {
    this.options.scan.log(line);
  }

  /** Stop leasing; with `now`, cancel running scanners too. */
  stop(opts: { now?: boolean } = {}): void {
    this.stopping = true;
    this.wake.abort();
    this.slotFreed?.();
    if (opts.now) this.abort.abort();
  }

  /** Sleep `ms`, or less when stopped or (with `orSlot`) when a slot frees. */
  private async pause(ms: number, orSlot = false): Promise<void> {
    const freed = orSlot ? new Promise<void>((resolve) => (this.slotFreed = resolve)) : new Promise<void>(() => {});
    try {
      await Promise.race([sleep(ms, this.wake.signal), freed]);
    } catch {
      // woken by stop()
    } finally {
      if (orSlot) this.slotFreed = undefined;
    }
  }

  /**
   * Lease up to `want` items, as many per request as the coordinator gives (`max`, at most 256);
   * stops early when the coordinator has nothing. A coordinator older than batched leases
   * refuses `max` (400) or answers `work` alone: from then on, one item per request.
   */
  private async lease(want: number): Promise<{ items: WorkItem[]; retryAfterMs: number }> {
    const items: WorkItem[] = [];
    let retryAfterMs = 0;
    while (items.length < want && !this.stopping) {
      const ask = this.batchLeases ? Math.min(want - items.length, MAX_WORK_BATCH) : 1;
      let res;
      try {
        res = await this.client.getWork(ask);
      } catch (error) {
        if (ask > 1 && error instanceof RejectedError && (error.status === 400 || error.status === 404)) {
          this.log(`agent: the coordinator refused a batched lease (${error.message.slice(0, 120)}); leasing one item per request`);
          this.batchLeases = false;
          continue;
        }
        // Keep what is already leased: scanning it beats letting the leases expire.
        if (items.length === 0) throw error;
        break;
      }
      // Items are unchecked here (the pipeline checks each one): only the list's shape is read.
      const batch = (res as { items?: unknown } | null)?.items;
      if (ask > 1 && Array.isArray(batch)) {
        const got = batch.slice(0, want - items.length) as WorkItem[];
        items.push(...got);
        this.noteSizes(got);
        // Enough held for the rate (the items of this request count once started): stop here.
        if (this.backlog + items.reduce((n, item) => n + this.costOf(item), 0) >= this.capacity()) break;
        if (batch.length === 0) retryAfterMs = res.retryAfterMs ?? 5000;
        // Fewer than asked: the coordinator has no more right now, unless it says `more` (the
        // answer reached its ports cap) — then ask again at once.
        if (batch.length < ask && !(batch.length > 0 && (res as { more?: unknown }).more === true)) break;
        continue;
      }
      if (ask > 1) {
        this.log('agent: the coordinator answers one work item per request; leasing one at a time');
        this.batchLeases = false;
      }
      if (!res?.work) {
        retryAfterMs = res?.retryAfterMs ?? 5000;
        break;
      }
      items.push(res.work);
      this.noteSizes([res.work]);
      if (this.backlog + items.reduce((n, item) => n + this.costOf(item), 0) >= this.capacity()) break;
    }
    return { items, retryAfterMs };
  }

  /** Run until stopped (or one burst with `once`). Resolves with the counters once every host in flight is submitted. */
  async run(): Promise<AgentStats> {
    const backoff = this.options.backoff ?? { initialMs: 1000, maxMs: 60_000 };
    let failures = 0;
    while (!this.stopping) {
      let free = this.options.concurrency - this.inFlight;
      if (free <= 0) {
        await this.pause(60_000, true);
        // Slots free one submit at a time: gather a moment and lease for all of them at once.
        await this.pause(LEASE_GATHER_MS);
        continue;
      }
      free = leaseAllowance({
        free: this.options.concurrency - this.inFlight,
        backlog: this.backlog,
        capacity: this.capacity(),
        itemCost: this.itemCost,
        holding: this.inFlight > 0,
      });
      if (free <= 0) {
        // The slots are free but the rate is not: wait for held work to drain.
        if (!this.backlogLogged) {
          this.backlogLogged = true;
          this.log(
            `agent: holding ~${Math.round(this.backlog)} s of preflight (masscan at ${this.pipeline.masscanRate} packets/s, connect sweeps at ~${Math.round(this.pipeline.connectRate)} ports/s); the limit is half the ${Math.round(this.leaseMs / 1000)} s lease, less masscan's start-up: leasing more as it drains`,
          );
        }
        await this.pause(60_000, true);
        await this.pause(LEASE_GATHER_MS);
        continue;
      }
      this.backlogLogged = false;
      let items: WorkItem[] = [];
      let retryAfterMs = 0;
      try {
        ({ items, retryAfterMs } = await this.lease(free));
        failures = 0;
      } catch (error) {
        failures++;
        // An overloaded coordinator (503) says when to come back (Retry-After, bounded): that, not the back-off.
        const delay = Math.min(backoff.maxMs, retryDelayMs(error, backoff.initialMs * 2 ** (failures - 1)));
        if (this.options.once && failures > 3) {
          this.stats.errors++;
          this.log(`agent: ${(error as Error).message}; giving up (--once)`);
          break;
        }
        this.stats.retries++;
        this.log(`agent: ${(error as Error).message}; retrying in ${delay} ms`);
        await this.pause(delay);
        continue;
      }
      if (items.length > 0) this.start(items);
      if (this.options.once) break;
      // Nothing to lease: wait for the coordinator's hint, or sooner when a slot frees (its
      // result may have queued a follow-up round). A full burst: wait for a slot to free.
      if (items.length < free) {
        await this.pause(Math.min(retryAfterMs || 1000, this.options.idleMaxMs ?? 30_000), this.inFlight > 0);
        await this.pause(LEASE_GATHER_MS);
      }
    }
    while (this.tasks.size > 0) await Promise.all([...this.tasks]);
    await this.giveBack();
    this.log(
      `agent: stopped (${this.stats.submitted} results submitted, ${this.stats.refused} refused, ${this.stats.rejected} rejected${this.stats.errors > 0 ? `, ${this.stats.errors} errors (work lost, logged above)` : ''}${this.stats.retries > 0 ? `, ${this.stats.retries} coordinator requests retried` : ''}${this.stats.cancelled > 0 ? `, ${this.stats.cancelled} scanning batches cancelled` : ''})`,
    );
    return this.stats;
  }

  /**
   * Seconds of preflight the held items may take: half a lease, less one masscan run's start-up
   * (unbounded until a lease was seen: the first answer then ends the first burst).
   */
  private capacity(): number {
    if (this.leaseMs <= 0) return Infinity;
    return Math.max(0, (this.leaseMs * BACKLOG_SHARE_OF_LEASE - masscanOverheadMs(this.options.scan.masscan)) / 1000);
  }

  /**
   * The seconds of preflight an item costs: its masscan probes (ports x tries) at --rate, or its
   * ports at the connect sweeps' rate (measured, else the worst case); 0 for nmap alone. Items
   * are unchecked here.
   */
  private costOf(item: unknown): number {
    const i = item as { scan?: { preflight?: unknown } } | null;
    const ports = portCountOf(item);
    if (ports === undefined) return 0;
    const preflight = i?.scan?.preflight;
    if (preflight !== 'auto' && preflight !== 'masscan' && preflight !== 'connect' && preflight !== 'none') return 0;
    const ran = choosePreflight(preflight as PreflightRequest, this.options.scan);
    const scan = this.options.scan;
    // At the rate masscan runs get now (lower while runs miss ports known open): the agent holds less.
    if (ran === 'masscan') return (ports * (preflightRetries(item ?? {}, scan) + 1)) / this.pipeline.masscanRate;
    if (ran === 'connect') return ports / this.pipeline.connectRate;
    return 0;
  }

  /** Learn the lease length and the item size from what the coordinator handed out. */
  private noteSizes(items: readonly unknown[]): void {
    for (const raw of items) {
      const i = raw as { deadline?: unknown; issuedAt?: unknown } | null;
      const length = typeof i?.deadline === 'number' && typeof i.issuedAt === 'number' ? i.deadline - i.issuedAt : NaN;
      if (Number.isFinite(length) && length > 0) this.leaseMs = Math.max(this.leaseMs, Math.min(length, 7 * 86_400_000));
    }
    if (items.length > 0) this.itemCost = this.costOf(items.at(-1));
  }

  /**
   * Leases this agent will not finish (scans cancelled by a second stop signal, results it gave up
   * on), given back so the coordinator queues them now, not when they expire (docs/api.md). A
   * coordinator that cannot take them (unreachable, older) lets them expire as before.
   */
  private async giveBack(): Promise<void> {
    const ids = [...this.unfinished];
    // Work requests whose answers never came: their leases (unknown here) go back with the rest.
    const keys = [...this.client.abandonedWorkRequests];
    if (ids.length === 0 && keys.length === 0) return;
    const what = `${ids.length} unfinished lease(s)${keys.length > 0 ? ` and the leases of ${keys.length} unanswered work request(s)` : ''}`;
    try {
      let released = 0;
      for (let i = 0; i === 0 || i < ids.length; i += MAX_RELEASE_BATCH)
        released += (await this.client.release(ids.slice(i, i + MAX_RELEASE_BATCH), i === 0 ? keys : [])).released;
      this.unfinished.clear();
      this.log(
        keys.length === 0
          ? `agent: gave ${released} of ${ids.length} unfinished lease(s) back to the coordinator (queued again now)`
          : `agent: gave ${released} lease(s) back to the coordinator (queued again now): of ${what}`,
      );
    } catch (error) {
      this.log(`agent: could not give ${what} back (${(error as Error).message}); they return to the queue when they expire`);
    }
  }

  private release(leaseId: string | undefined): void {
    if (leaseId === undefined) return;
    const cost = this.heldCost.get(leaseId);
    if (cost === undefined) return;
    this.heldCost.delete(leaseId);
    this.backlog -= cost;
  }

  private start(items: WorkItem[]): void {
    this.stats.batches++;
    for (const item of items) {
      const id = typeof item?.leaseId === 'string' ? item.leaseId : undefined;
      if (id !== undefined) this.unfinished.add(id);
      if (id === undefined || this.heldCost.has(id)) continue;
      const cost = this.costOf(item);
      this.heldCost.set(id, cost);
      this.backlog += cost;
    }
    // Each item holds a slot until its result is submitted (or the burst fails or is aborted).
    const held = new Set(items.map((i) => i?.leaseId));
    this.inFlight += held.size;
    // Items are unchecked here (the pipeline checks each): print them without trusting their shape.
    this.log(`agent: ${describeLeased(items)}`);
    const ref: { task?: Promise<void> } = {};
    const task: Promise<void> = (async () => {
      try {
        await this.pipeline.scan(items, (outcome) => this.finish(outcome, held));
      } catch (error) {
        if (this.abort.signal.aborted) {
          // Cancelled by the operator (a second SIGTERM): what was asked for, not a failure.
          this.stats.cancelled++;
          this.log(`agent: cancelled: ${(error as Error).message} (its unsubmitted leases are given back as the agent stops)`);
        } else {
          this.stats.errors++;
          this.log(`agent: scanning failed: ${(error as Error).message} (unsubmitted leases return to the queue when they expire)`);
        }
      } finally {
        this.inFlight -= held.size;
        for (const id of held) {
          this.release(id);
          if (!this.abort.signal.aborted) this.unfinished.delete(id);
        }
        held.clear();
        if (ref.task) this.tasks.delete(ref.task);
        this.slotFreed?.();
      }
    })();
    ref.task = task;
    this.tasks.add(task);
  }

  private async finish(outcome: HostOutcome, held: Set<string>): Promise<void> {
    let done = false;
    try {
      if (outcome.kind === 'refused') {
        this.stats.refused++;
        // A refused item's lease is left to expire: given back, it would be handed straight back.
        done = true;
        await reportRefusal(this.client, outcome, (line) => this.log(line));
        return;
      }
      done = await this.submit(outcome.item, outcome.submission);
    } finally {
      if (done || !this.abort.signal.aborted) this.unfinished.delete(outcome.item?.leaseId);
      if (held.delete(outcome.item?.leaseId)) {
        this.inFlight--;
        this.release(outcome.item?.leaseId);
      }
      this.slotFreed?.();
    }
  }

  /**
   * Submit one host's result, retrying through a coordinator outage until the lease deadline.
   * Results travel in small batches (flushed every 100 ms or at 16); the single route takes
   * over when the coordinator has no batch route or could not read a batch.
   */
  private async submit(item: WorkItem, result: ResultSubmission): Promise<boolean> {
    let failures = 0;
    let single = !this.results.enabled;
    for (;;) {
      try {
        let followUp: boolean;
        if (!single) {
          const answer = await this.results.add(result);
          if (answer.kind === 'single') {
            single = true;
            continue;
          }
          if (answer.kind === 'rejected') {
            this.stats.rejected++;
            this.log(`agent: result for ${result.ip} rejected: ${answer.message}`);
            return true;
          }
          if (answer.kind === 'retry') throw answer.error;
          followUp = answer.followUp;
        } else followUp = (await this.client.submit(result)).followUp;
        this.stats.submitted++;
        const open = result.ports.filter((p) => p.state === 'open').length;
        const partial = result.incomplete !== undefined ? ` (partial: ${result.incomplete})` : '';
        // The visit's time counts its wait for a run; say how long the run itself took (a silent
        // sweep reported "in 338.5 s" on the README flow had mostly waited behind other waves).
        const ran = result.timings?.preflight;
        const run = ran !== undefined && result.preflight !== 'none' ? ` (${result.preflight} ${(ran / 1000).toFixed(1)} s)` : '';
        this.log(
          `agent: ${result.ip}: ${open} open port(s) of ${item.ports.length} via ${result.preflight} in ${((result.finishedAt - result.startedAt) / 1000).toFixed(1)} s${run}${partial}${followUp ? ', follow-up queued' : ''}`,
        );
        return true;
      } catch (error) {
        if (error instanceof RejectedError) {
          this.stats.rejected++;
          this.log(`agent: result for ${result.ip} rejected: ${error.message}`);
          return true;
        }
        failures++;
        const delay = Math.min(
          this.options.backoff?.maxMs ?? 60_000,
          retryDelayMs(error, (this.options.backoff?.initialMs ?? 1000) * 2 ** (failures - 1)),
        );
        if (Date.now() + delay > item.deadline || this.abort.signal.aborted) {
          this.stats.errors++;
          this.log(`agent: giving up on the result for ${result.ip}: ${(error as Error).message}`);
          return false;
        }
        this.stats.retries++;
        this.logRetry(result.ip, (error as Error).message, delay);
        await sleep(delay);
      }
    }
  }
}
