import type { FastifyBaseLogger } from 'fastify';
import { createStrategy } from '../../strategies/build.js';
import type { Explanation, HostResult, Strategy, StrategyEnv } from '../../strategies/types.js';
import type { Store } from '../store/types.js';
import type { Policy } from './policy.js';

/** What is persisted per (policy key, strategy): the state and the guard rails' tallies. */
export interface LearnedDocument {
  readonly strategy: string;
  readonly state: unknown;
  readonly batches: number;
  readonly learned: number;
  readonly pseudo: number;
  readonly lossyBatches: number;
}

interface Entry {
  policy: Policy;
  strategy: Strategy;
  pending: HostResult[];
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

  constructor(
    private readonly store: Store,
    private readonly env: StrategyEnv,
    private readonly batchSize: number,
    private readonly log: FastifyBaseLogger,
  ) {}

  /** Build (or rebuild after a policy change) the strategy of a policy key, restoring state. */
  async setPolicy(key: string, policy: Policy, now: number): Promise<void> {
    await this.flush(key, now);
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
    this.entries.set(key, { policy, strategy, pending: [], doc, dirty: false, persistedAt: now });
  }

  /** Forget a policy (its state stays in the store). */
  async dropPolicy(key: string, now: number): Promise<void> {
    await this.flush(key, now);
    this.entries.delete(key);
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
        await this.learn(k, this.lastNow, this.lastNow - e.persistedAt >= PERSIST_INTERVAL_MS);
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

  private async learn(k: string, now: number, write: boolean): Promise<void> {
    {
      const e = this.entries.get(k);
      if (!e) return;
      if (e.pending.length === 0) {
        if (write && e.dirty) await this.write(k, e, now);
        return;
      }
      const batch = e.pending;
      e.pending = [];
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
      if (write) await this.write(k, e, now);
    }
  }

  private async write(k: string, e: Entry, now: number): Promise<void> {
    e.doc = { ...e.doc, state: e.strategy.state() };
    e.dirty = false;
    e.persistedAt = now;
    // Taking the state and serialising it cost ~10-25 ms each for adaptive: two turns of the
    // event loop, so requests are served in between instead of waiting for both.
    await new Promise<void>((resolve) => setImmediate(resolve));
    try {
      await this.store.putDocument('strategyStates', stateKey(k, e.strategy.name), e.doc, { at: now });
    } catch (error) {
      e.dirty = true; // written again by the next sweep
      throw error;
    }
  }

  /** What a policy's strategy has learned, with the batch tallies. */
  explain(key: string, limit: number): { explanation: Explanation; pending: number; batches: number; learned: number; pseudo: number; lossyBatches: number } {
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
