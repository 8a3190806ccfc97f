import { type Logger, isPortbanditError } from '../core/index.js';
import { createStrategy, type Explanation, type HostResult, type Strategy, type StrategyEnv } from '../../strategies/index.js';
import type { Store } from '../store/index.js';
import type { Policy } from './policy.js';

/** What is persisted per (policy key, strategy): the state and the guard rails' tallies. */
export interface LearnedDocument {
  readonly strategy: string;
  readonly state: unknown;
  readonly batches: number;
  readonly learned: number;
  readonly pseudo: number;
  readonly lossyBatches: number;
  /**
   * Several coordinators (a shared store): the learning-queue position this state has learned
   * every item of its policy before. A newly elected learner resumes reading there.
   */
  readonly through?: string;
}

interface Entry {
  policy: Policy;
  strategy: Strategy;
  pending: HostResult[];
  /** Learning-queue positions of `pending` (shared stores), in order. */
  pendingPositions: string[];
  /** The queue window read so far ends here (shared stores). */
  readThrough: string | undefined;
  /** Revision of the stored state this entry was loaded from or last wrote. */
  revision: number;
  doc: LearnedDocument;
  /** Learned since the state was last written. */
  dirty: boolean;
  persistedAt: number;
}

/**
 * How often a full batch writes the state. Serialising a strategy's state and writing it cost
 * more than the batch of results it learned from (a CPU profile under 1,000 agents: ~13% of the
 * server's time), so between writes the state is only in memory. Each write also stalls the
 * event loop (adaptive's state: ~0.2-1 MB, `state()` plus JSON ~20-50 ms): every 5 s that put
 * ~1% of requests behind it, the whole p99 budget; every 30 s, ~0.2%. A crash loses at most this
 * much learning; never results (they are in the store), and `close`, `sweep` when asked to
 * learn, and policy changes write it at once.
 */
export const PERSIST_INTERVAL_MS = 30_000;

/** The document key of a policy's learned state: switching strategies keeps each one's state. */
export function stateKey(policyKey: string, strategy: string): string {
  return `${policyKey}/${strategy}`;
}

/**
 * One live strategy per policy, learning online: finished host visits queue up and are fed to
 * `observe` in batches (delayed, batched feedback is what the strategies are built for); the
 * state is written to the store at most every PERSIST_INTERVAL_MS while batches arrive, and
 * whenever `flush` or `persist` is called, so learning survives restarts.
 */
export class Learner {
  private readonly entries = new Map<string, Entry>();
  /** The learning turn `add` scheduled, until it has run. */
  private tick: Promise<void> | undefined;
  private lastNow = 0;

  /**
   * `fenced`: several coordinators share the store; this learner writes a state only over the
   * revision it loaded or wrote (compare-and-set), so a learner that lost the role cannot
   * overwrite its successor's state (it reloads instead).
   */
  constructor(
    private readonly store: Store,
    private readonly env: StrategyEnv,
    private readonly batchSize: number,
    private readonly log: Logger,
    private readonly fenced = false,
  ) {}

  /** Build (or rebuild after a policy change) the strategy of a policy key, restoring state. */
  async setPolicy(key: string, policy: Policy, now: number): Promise<void> {
    await this.flush(key, now);
    const entry = await this.load(key, policy, now);
    // Visits finished while the state was read back went to the entry being replaced, after its
    // flush: the new entry learns them (they were dropped with it).
    const replaced = this.entries.get(key);
    if (replaced !== undefined) {
      entry.pending.push(...replaced.pending);
      entry.pendingPositions.push(...replaced.pendingPositions);
    }
    this.entries.set(key, entry);
  }

  /**
   * Load a policy's entry again from its stored state, unless the entry was dropped or replaced
   * while the state was read (a policy change made meanwhile is not undone with the old policy).
   */
  private async reload(key: string, entry: Entry, now: number): Promise<boolean> {
    const loaded = await this.load(key, entry.policy, now);
    if (this.entries.get(key) !== entry) return false;
    this.entries.set(key, loaded);
    return true;
  }

  /** A policy's entry built from its stored state (not yet in `entries`). */
  private async load(key: string, policy: Policy, now: number): Promise<Entry> {
    const stored = await this.store.getDocument<LearnedDocument>('strategyStates', stateKey(key, policy.strategy));
    let strategy: Strategy;
    let doc: LearnedDocument = { strategy: policy.strategy, state: undefined, batches: 0, learned: 0, pseudo: 0, lossyBatches: 0 };
    try {
      strategy = createStrategy(policy, this.env, stored?.value.state);
      if (stored) doc = stored.value;
    } catch (error) {
      // A state that no longer fits (the strategy changed shape) must not stop the server.
      this.log.warn({ err: error, policy: key }, 'saved strategy state does not fit; starting to learn afresh');
      strategy = createStrategy(policy, this.env);
    }
    return {
      policy,
      strategy,
      pending: [],
      pendingPositions: [],
      readThrough: undefined,
      revision: stored?.revision ?? 0,
      doc,
      dirty: false,
      persistedAt: now,
    };
  }

  // ---------------------------------------------------------------- several coordinators
  /**
   * Queue a finished visit read from the shared learning queue at `position`, unless this
   * policy's stored state already learned it (a learner elected after another one died).
   */
  addQueued(key: string, result: HostResult, position: string, now: number): void {
    const e = this.entries.get(key);
    if (!e) return;
    if (e.doc.through !== undefined && BigInt(position) < BigInt(e.doc.through)) return;
    e.pendingPositions.push(position);
    this.add(key, result, now);
  }

  /** Every queue item before `cursor` has been handed to `addQueued`. */
  markRead(cursor: string): void {
    for (const e of this.entries.values()) e.readThrough = cursor;
  }

  /**
   * The lowest queue position below which no policy needs an item again ('0' when unknown): its
   * stored `through`, or, for a policy with nothing pending or unsaved, everything read so far
   * (a policy that never gets a visit must not keep the queue from being pruned).
   */
  lowestThrough(): string {
    let low: bigint | undefined;
    for (const e of this.entries.values()) {
      const settled = !e.dirty && e.pending.length === 0 && e.readThrough !== undefined;
      const t = BigInt((settled ? e.readThrough : e.doc.through) ?? '0');
      if (low === undefined || t < low) low = t;
    }
    return String(low ?? 0n);
  }

  /** Rebuild every policy whose stored state another coordinator (the learner) has rewritten. */
  async reloadChanged(now: number): Promise<number> {
    let reloaded = 0;
    for (const [key, e] of [...this.entries]) {
      const stored = await this.store.getDocument<LearnedDocument>('strategyStates', stateKey(key, e.policy.strategy));
      if (this.entries.get(key) !== e || (stored?.revision ?? 0) === e.revision || e.dirty || e.pending.length > 0) continue;
      if (await this.reload(key, e, now)) reloaded++;
    }
    return reloaded;
  }

  /** Drop what this process learned and reload every policy's stored state (a change of learner). */
  async reloadAll(now: number): Promise<void> {
    for (const [key, e] of [...this.entries]) {
      e.pending = [];
      e.pendingPositions = [];
      e.dirty = false;
      await this.reload(key, e, now);
    }
  }

  /** Forget a policy (its state stays in the store). */
  async dropPolicy(key: string, now: number): Promise<void> {
    const dropped = this.entries.get(key);
    await this.flush(key, now);
    // Not an entry loaded again while this one was flushed.
    if (this.entries.get(key) === dropped) this.entries.delete(key);
  }

  has(key: string): boolean {
    return this.entries.has(key);
  }

  strategy(key: string): Strategy {
    const e = this.entries.get(key);
    if (!e) throw new Error(`no policy loaded for "${key}"`);
    return e.strategy;
  }

  policy(key: string): Policy {
    const e = this.entries.get(key);
    if (!e) throw new Error(`no policy loaded for "${key}"`);
    return e.policy;
  }

  keys(): string[] {
    return [...this.entries.keys()].sort();
  }

  /**
   * Queue a finished host visit. A full batch is learned on a later turn of the event loop, off
   * the request that completed it: `observe` costs milliseconds (and writing the state tens of
   * them) that no agent's submit should wait for. `settled` waits for that turn.
   */
  add(key: string, result: HostResult, now: number): void {
    const e = this.entries.get(key);
    if (!e) return;
    e.pending.push(result);
    this.lastNow = now;
    if (e.pending.length >= this.batchSize) this.schedule();
  }

  private schedule(): void {
    this.tick ??= new Promise<void>((resolve) => setImmediate(resolve)).then(() => this.learnFullBatches());
  }

  /** Resolve once the learning queued by `add` has run (tests; `flush` does not need it). */
  async settled(): Promise<void> {
    while (this.tick) await this.tick;
  }

  private async learnFullBatches(): Promise<void> {
    try {
      for (const [k, e] of [...this.entries]) {
        if (e.pending.length < this.batchSize) continue;
        await this.learn(k, this.lastNow, this.lastNow - e.persistedAt >= PERSIST_INTERVAL_MS, true);
      }
    } catch (error) {
      // The state stays dirty: the next sweep writes it again.
      this.log.error({ err: error }, 'writing the learned state failed');
    } finally {
      this.tick = undefined;
      // Batches that filled while this turn wrote are learned on the next.
      if ([...this.entries.values()].some((e) => e.pending.length >= this.batchSize)) this.schedule();
    }
  }

  /** Learn from the pending results of one policy (or all) and persist the state. */
  async flush(key: string | undefined, now: number): Promise<void> {
    const keys = key === undefined ? [...this.entries.keys()] : [key];
    for (const k of keys) await this.learn(k, now, true);
  }

  /** Write the states learned since their last write, once PERSIST_INTERVAL_MS has passed (the periodic sweep calls this). */
  async persist(now: number): Promise<void> {
    for (const [k, e] of [...this.entries]) if (e.dirty && now - e.persistedAt >= PERSIST_INTERVAL_MS) await this.write(k, e, now);
  }

  /**
   * Learn a policy's pending results `batchSize` at a time (the batch `observe` is configured
   * for), with a turn of the event loop between batches: results pile up while the loop is busy,
   * and one `observe` of 256 of them held it 15-41 ms in the load benchmark, with every request
   * behind it. With `fullOnly`, a remainder smaller than a batch waits for more (or for the
   * sweep's flush, which learns it).
   */
  private async learn(k: string, now: number, write: boolean, fullOnly = false): Promise<void> {
    const e = this.entries.get(k);
    if (!e) return;
    const least = fullOnly ? this.batchSize : 1;
    for (let first = true; e.pending.length >= least; first = false) {
      if (!first) {
        await new Promise<void>((resolve) => setImmediate(resolve));
        // Replaced meanwhile (a policy edit, a change of learner): the new entry learns its own.
        if (this.entries.get(k) !== e) return;
        if (e.pending.length < least) break;
      }
      const batch = e.pending.splice(0, this.batchSize);
      // Shared learning keeps one queue position per pending result, in order (`write` saves the
      // first one still pending as what the state has learned through); none otherwise.
      e.pendingPositions.splice(0, batch.length);
      const verdict = e.strategy.observe(batch);
      // The state itself is taken when written (`write`): serialising it is the expensive part.
      e.doc = {
        strategy: e.strategy.name,
        state: e.doc.state,
        batches: e.doc.batches + 1,
        learned: e.doc.learned + verdict.learned,
        pseudo: e.doc.pseudo + verdict.pseudo,
        lossyBatches: e.doc.lossyBatches + (verdict.lossy ? 1 : 0),
      };
      e.dirty = true;
      this.log.debug({ policy: k, ...verdict, size: batch.length }, 'strategy learned from a batch');
    }
    if (write && e.dirty) await this.write(k, e, now);
  }

  private async write(k: string, e: Entry, now: number): Promise<void> {
    // What this state has learned through: up to the first visit still pending, else all read.
    const through = e.pendingPositions[0] ?? e.readThrough ?? e.doc.through;
    e.doc = { ...e.doc, state: e.strategy.state(), ...(through !== undefined ? { through } : {}) };
    e.dirty = false;
    e.persistedAt = now;
    // Taking the state and serialising it cost ~10-25 ms each for adaptive: two turns of the
    // event loop, so requests are served in between instead of waiting for both.
    await new Promise<void>((resolve) => setImmediate(resolve));
    try {
      const stored = await this.store.putDocument('strategyStates', stateKey(k, e.strategy.name), e.doc, {
        at: now,
        ...(this.fenced ? { expectedRevision: e.revision } : {}),
      });
      e.revision = stored.revision;
    } catch (error) {
      if (this.fenced && isPortbanditError(error, 'PB_ERR_CONFLICT')) {
        // Another coordinator holds the learner role now and wrote first: its state wins; what
        // this one learned since is re-read from the queue by the new learner.
        this.log.warn({ policy: k }, 'learned state was written by another coordinator; reloading it');
        e.pending = [];
        e.pendingPositions = [];
        await this.setPolicy(k, e.policy, now);
        return;
      }
      e.dirty = true; // written again by the next sweep
      throw error;
    }
  }

  /** What a policy's strategy has learned, with the batch tallies. */
  explain(
    key: string,
    limit: number,
  ): { explanation: Explanation; pending: number; batches: number; learned: number; pseudo: number; lossyBatches: number } {
    const e = this.entries.get(key);
    if (!e) throw new Error(`no policy loaded for "${key}"`);
    return {
      explanation: e.strategy.explain(limit),
      pending: e.pending.length,
      batches: e.doc.batches,
      learned: e.doc.learned,
      pseudo: e.doc.pseudo,
      lossyBatches: e.doc.lossyBatches,
    };
  }
}
