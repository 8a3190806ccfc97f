import type { Logger } from '../core/index.js';
import { readHostResult } from './lease-session.js';
import type { Store } from '../store/index.js';
import type { Learner } from './learner.js';
import { DEFAULT_POLICY_KEY } from './policy.js';

/** How often pending results are learned even when they trickle in slower than a batch. */
export const LEARN_INTERVAL_MS = 60_000;

/** How often a coordinator that is not the learner reloads the states the learner wrote. */
const STATE_RELOAD_MS = 10_000;

/** How often the learner drops learning-queue items every stored state has learned. */
const LEARNING_PRUNE_MS = 60_000;

/**
 * When and where the Learner learns. One coordinator: it learns from its own finished visits and
 * saves its states periodically. Several coordinators sharing a store (PostgreSQL): one elected
 * learner reads everyone's finished visits from the learning queue, learns, writes the states
 * fenced, and prunes the queue; the others reload the states it writes.
 */
export class LearningSchedule {
  /** This process holds the learner role (shared stores). */
  private leader = false;
  /** Where this learner's next read of the learning queue starts. */
  private learnCursor: string | undefined;
  private lastLearnAt = 0;
  private lastStateReloadAt = 0;
  private lastPruneAt = 0;

  constructor(
    private readonly store: Store,
    private readonly learner: Learner,
    private readonly log: Logger,
    private readonly shared: boolean,
  ) {}

  /** True when this process learns (always, unless it shares the store and another holds the role). */
  get learns(): boolean {
    return !this.shared || this.leader;
  }

  /** The periodic part (each sweep): learn what is pending when due or `learnNow`, else save what is due. */
  async sweep(now: number, learnNow: boolean): Promise<void> {
    if (this.shared) return this.shareLearning(now, learnNow);
    if (learnNow || now - this.lastLearnAt >= LEARN_INTERVAL_MS) {
      this.lastLearnAt = now;
      await this.learner.flush(undefined, now);
    } else await this.learner.persist(now);
  }

  /** Learn and write everything before the store closes (shared: only the learner writes states). */
  async close(now: number): Promise<void> {
    // Shared: what the learner read but has not learned is written with a position before it,
    // so the next learner reads it again.
    if (this.learns) await this.learner.flush(undefined, now);
  }

  /**
   * Several coordinators: hold (or try to take) the learner role. The learner reads the
   * learning queue from where it got to, learns, writes the states fenced, and drops what every
   * stored state has learned; the others reload the states it writes.
   */
  private async shareLearning(now: number, learnNow: boolean): Promise<void> {
    let leader = false;
    try {
      leader = await this.store.holdRole('learner');
    } catch (error) {
      this.log.error({ err: error }, 'could not check the learner role; not learning this sweep');
    }
    if (leader !== this.leader) {
      // Either way, start from the stored states: the previous learner may have written since.
      await this.learner.reloadAll(now);
      this.learnCursor = leader ? this.learner.lowestThrough() : undefined;
      this.log.info(
        { cursor: this.learnCursor },
        leader ? 'this coordinator is the learner now' : 'this coordinator is no longer the learner',
      );
      this.leader = leader;
    }
    if (!leader) {
      if (now - this.lastStateReloadAt >= STATE_RELOAD_MS) {
        this.lastStateReloadAt = now;
        const reloaded = await this.learner.reloadChanged(now);
        if (reloaded > 0) this.log.debug({ reloaded }, "reloaded the learner's states");
      }
      return;
    }
    const read = await this.store.readLearning(this.learnCursor);
    for (const item of read.items) {
      const key = this.learner.has(item.key) ? item.key : DEFAULT_POLICY_KEY;
      this.learner.addQueued(key, readHostResult(item.result), item.position, now);
    }
    this.learner.markRead(read.cursor);
    this.learnCursor = read.cursor;
    await this.learner.settled();
    if (learnNow || now - this.lastLearnAt >= LEARN_INTERVAL_MS) {
      this.lastLearnAt = now;
      await this.learner.flush(undefined, now);
    } else await this.learner.persist(now);
    if (now - this.lastPruneAt >= LEARNING_PRUNE_MS) {
      this.lastPruneAt = now;
      await this.store.pruneLearning(this.learner.lowestThrough());
    }
  }
}
