import {
  type BanditParams,
  type BanditState,
  banditParameters,
  createBanditStrategy,
  mergeBanditStates,
  restoreDiscovery,
  restorePrefixStats,
  restoreStats,
} from './bandit-base.js';
import { parseParameters } from './options.js';
import type { PortPicker } from './port-picker.js';
import type { PortStats } from './stats/port-stats.js';
import type { ParameterSpec, StrategyDefinition } from './types.js';

export interface UcbParams extends BanditParams {
  /** Width of the confidence bonus (c). */
  readonly exploration: number;
  /** Rank a host's /24 (/64) under its tags (true) or by its tags alone. */
  readonly byPrefix: boolean;
}

const parameters: ParameterSpec[] = [
  {
    name: 'exploration',
    type: 'number',
    default: 1,
    min: 0,
    max: 100,
    description:
      'Width c of the confidence bonus: index = m + c * sqrt(2 ln N) * sqrt(m(1-m) / (n+1)), from the per-tag posterior Beta(alpha, beta), n = alpha + beta.',
  },
  {
    name: 'byPrefix',
    type: 'boolean',
    default: true,
    description:
      "Score each host's network prefix (/24, /64) under its tags, with the tag's optimistic index as the prefix's prior (a subnet's own ports spread to its other hosts, its evidence vetoes ports its tag believes in); false = the tags' index alone.",
  },
  ...banditParameters(300),
];

/**
 * A max-heap of items 0..n-1 by a score that may only decrease while the heap lives (pending
 * trials shrink a bonus): keys are cached and re-checked at the top, so a stale key costs one
 * sift, not a rebuild. Ties go to the lower port.
 */
class LazyHeap {
  private readonly key: Float64Array;
  private readonly heap: Int32Array;
  private size: number;

  constructor(
    count: number,
    private readonly score: (i: number) => number,
    private readonly port: (i: number) => number,
  ) {
    this.key = new Float64Array(count);
    this.heap = new Int32Array(count);
    for (let i = 0; i < count; i++) {
      this.key[i] = score(i);
      this.heap[i] = i;
    }
    this.size = count;
    for (let i = (count >> 1) - 1; i >= 0; i--) this.down(i);
  }

  /** The best item (its key brought up to date), or -1 when empty. */
  peek(): number {
    while (this.size > 0) {
      const top = this.heap[0]!;
      const fresh = this.score(top);
      if (fresh >= this.key[top]!) return top;
      this.key[top] = fresh;
      this.down(0);
    }
    return -1;
  }

  /** The best item's score as of the last peek. */
  keyOf(i: number): number {
    return this.key[i]!;
  }

  /** Remove the item peek() returned. */
  popTop(): void {
    this.size--;
    if (this.size > 0) {
      this.heap[0] = this.heap[this.size]!;
      this.down(0);
    }
  }

  push(i: number): void {
    this.key[i] = this.score(i);
    this.heap[this.size] = i;
    this.up(this.size++);
  }

  private before(a: number, b: number): boolean {
    const ka = this.key[a]!;
    const kb = this.key[b]!;
    return ka > kb || (ka === kb && this.port(a) < this.port(b));
  }

  private up(at: number): void {
    const h = this.heap;
    const item = h[at]!;
    while (at > 0) {
      const parent = (at - 1) >> 1;
      if (!this.before(item, h[parent]!)) break;
      h[at] = h[parent]!;
      at = parent;
    }
    h[at] = item;
  }

  private down(at: number): void {
    const h = this.heap;
    const item = h[at]!;
    for (;;) {
      let child = 2 * at + 1;
      if (child >= this.size) break;
      if (child + 1 < this.size && this.before(h[child + 1]!, h[child]!)) child++;
      if (!this.before(h[child]!, item)) break;
      h[at] = h[child]!;
      at = child;
    }
    h[at] = item;
  }
}

/**
 * The candidates of one tag context under their optimistic index, for a batch of hosts decided on
 * the same statistics: index = m + c * sqrt(2 ln N) * sd, with m and sd the mean and standard
 * deviation of the hierarchical posterior Beta(alpha, beta) (prior pseudo-counts included) and N
 * the hosts observed in the context: a Gaussian approximation of Bayes-UCB's upper quantile.
 * Because the bonus scales with the posterior sd, a port the prior (nmap, or the scope for a tag)
 * calls rare gets little optimism.
 *
 * Probes handed out since the statistics last changed count as pending trials of their port
 * (hallucinated observations, as batched UCB does: the mean stays, the sd shrinks as if they had
 * answered). Without them every host of a batch — in the simulator a whole epoch, thousands of
 * hosts — probed the same uncertain ports, each bonus paid for by the whole batch rather than by
 * the few trials that would measure it (ucb at budget 25 on the `internet` profile lost 5 points to
 * every other learner and to top-k).
 */
class TagIndex {
  readonly ports: readonly number[];
  readonly slot = new Map<number, number>();
  readonly heap: LazyHeap;
  private readonly mean: Float64Array;
  private readonly trials: Float64Array;
  private readonly pending: Float64Array;
  private readonly width: number;

  constructor(stats: PortStats, tags: readonly string[], params: UcbParams) {
    const t = stats.table(tags, params.candidatePool);
    const n0 = tags.length === 0 ? stats.observations(null) : Math.max(...tags.map((tag) => stats.observations(tag)));
    this.width = params.exploration * Math.sqrt(2 * Math.log(Math.max(Math.E, 1 + n0)));
    this.ports = t.ports;
    this.mean = t.mean;
    this.trials = new Float64Array(t.ports.length);
    this.pending = new Float64Array(t.ports.length);
    for (let i = 0; i < t.ports.length; i++) {
      this.trials[i] = t.alpha[i]! + t.beta[i]!;
      this.slot.set(t.ports[i]!, i);
    }
    this.heap = new LazyHeap(
      t.ports.length,
      (i) => this.upper(i),
      (i) => this.ports[i]!,
    );
  }

  /** Candidate i's optimistic index, pending trials counted. */
  upper(i: number): number {
    const m = this.mean[i]!;
    return m + this.width * Math.sqrt((m * (1 - m)) / (this.trials[i]! + this.pending[i]! + 1));
  }

  /** Candidate i was handed to a host. */
  probed(i: number): void {
    this.pending[i]!++;
  }

  /** Fill the picker by descending index (no prefix evidence); `count`: the ports are handed out (pending trials). */
  fill(picker: PortPicker, count: boolean): void {
    const popped: number[] = [];
    for (let i = this.heap.peek(); i >= 0 && !picker.full; i = this.heap.peek()) {
      this.heap.popTop();
      popped.push(i);
      if (picker.add(this.ports[i]!) && count) this.probed(i);
    }
    for (const i of popped) this.heap.push(i);
  }
}

/**
 * A host's prefix (/24, /64) under its tags, as adaptive and epsilon-greedy rank, with the tag's
 * optimistic index as the prefix's prior: score = (k u_tag + S_p) / (k + n_p), S_p and n_p the
 * prefix's discounted successes and trials of the port, k = tagStrength. Ports without an entry
 * in the prefix have only its sweeps as trials, which scale every tag index by k / (k + sweeps)
 * and keep the tag's order (the tag heap serves them). A subnet's own ports are thus exploited in
 * it, and its evidence vetoes ports its tag believes in; exploration stays the tag's (its bonus,
 * its pending trials).
 */
class PrefixView {
  private readonly entries: number[] = [];
  private readonly successes: number[] = [];
  private readonly trials: number[] = [];
  /** The entry's candidate slot in the tag index, or -1 (then `fixed` holds its tag mean). */
  private readonly slots: number[] = [];
  private readonly fixed: number[] = [];
  private readonly isEntry = new Set<number>();
  private readonly heap: LazyHeap;
  private readonly scale: number;

  constructor(
    private readonly tag: TagIndex,
    stats: PortStats,
    prefixStats: PortStats,
    tags: readonly string[],
    prefix: string,
    private readonly k: number,
  ) {
    for (const port of prefixStats.entries(prefix)) {
      const { successes, trials } = prefixStats.counts(prefix, port);
      const slot = tag.slot.get(port) ?? -1;
      this.entries.push(port);
      this.successes.push(successes);
      this.trials.push(Math.max(trials, successes));
      this.slots.push(slot);
      this.fixed.push(slot >= 0 ? 0 : stats.mean(tags, port));
      this.isEntry.add(port);
    }
    this.scale = k / (k + prefixStats.sweeps(prefix));
    this.heap = new LazyHeap(
      this.entries.length,
      (e) => this.score(e),
      (e) => this.entries[e]!,
    );
  }

  private score(e: number): number {
    const slot = this.slots[e]!;
    const u = slot >= 0 ? this.tag.upper(slot) : this.fixed[e]!;
    return (this.k * u + this.successes[e]!) / (this.k + this.trials[e]!);
  }

  /** Fill the picker by descending score, merging the prefix's entries with the scaled tag index; `count` as TagIndex.fill. */
  fill(picker: PortPicker, count: boolean): void {
    const tagHeap = this.tag.heap;
    const fromTag: number[] = [];
    const fromPrefix: number[] = [];
    while (!picker.full) {
      let t = tagHeap.peek();
      while (t >= 0 && this.isEntry.has(this.tag.ports[t]!)) {
        tagHeap.popTop();
        fromTag.push(t);
        t = tagHeap.peek();
      }
      const e = this.heap.peek();
      if (t < 0 && e < 0) break;
      const tagScore = t >= 0 ? this.scale * tagHeap.keyOf(t) : -Infinity;
      const prefixScore = e >= 0 ? this.heap.keyOf(e) : -Infinity;
      if (prefixScore > tagScore || (prefixScore === tagScore && this.entries[e]! < this.tag.ports[t]!)) {
        this.heap.popTop();
        fromPrefix.push(e);
        if (picker.add(this.entries[e]!) && count && this.slots[e]! >= 0) this.tag.probed(this.slots[e]!);
      } else {
        tagHeap.popTop();
        fromTag.push(t);
        if (picker.add(this.tag.ports[t]!) && count) this.tag.probed(t);
      }
    }
    for (const t of fromTag) tagHeap.push(t);
    for (const e of fromPrefix) this.heap.push(e);
  }
}

/**
 * Combinatorial UCB over ports (CUCB): every candidate port gets an optimistic index from its
 * per-tag posterior, a host's prefix evidence rescales it (PrefixView), and each host probes the
 * top scores, with the probes handed to earlier hosts on the same statistics counted as pending
 * trials (TagIndex).
 */
export const ucbStrategy: StrategyDefinition<UcbParams, BanditState> = {
  name: 'ucb',
  summary: 'Contextual combinatorial UCB: per-tag optimistic index (posterior mean + sqrt(2 ln N) posterior sd); top-k indices.',
  parameters,
  parseParams: (raw) => parseParameters<UcbParams>('ucb', parameters, raw),
  create(options, params, env, state) {
    const stats = restoreStats(env.catalog, params, state);
    const discovery = restoreDiscovery(options, params, env.catalog, state?.discovery);
    const prefixStats = params.byPrefix ? restorePrefixStats(env.catalog, params, state) : undefined;
    // Indexes per context, rebuilt when the statistics change (pending trials then become real ones).
    let version = -1;
    const byTags = new Map<string, TagIndex>();
    const byPrefix = new Map<string, PrefixView>();
    return createBanditStrategy({
      name: 'ucb',
      options,
      env,
      params,
      ...(state !== undefined ? { state } : {}),
      stats,
      discovery,
      ...(prefixStats ? { prefixStats } : {}),
      rank(round, _rng, picker) {
        const v = stats.version * 1e9 + (prefixStats?.version ?? 0);
        if (version !== v) {
          byTags.clear();
          byPrefix.clear();
          version = v;
        }
        const key = round.tags.join('\u0000');
        let tag = byTags.get(key);
        if (tag === undefined) byTags.set(key, (tag = new TagIndex(stats, round.tags, params)));
        if (prefixStats === undefined || (prefixStats.entries(round.prefix).length === 0 && prefixStats.sweeps(round.prefix) === 0)) {
          tag.fill(picker, round.peek !== true);
          return;
        }
        const pkey = `${round.prefix}\u0001${key}`;
        let view = byPrefix.get(pkey);
        if (view === undefined) {
          if (byPrefix.size > 4096) byPrefix.clear();
          byPrefix.set(pkey, (view = new PrefixView(tag, stats, prefixStats, round.tags, round.prefix, params.tagStrength)));
        }
        view.fill(picker, round.peek !== true);
      },
      split: (room) => ({ learned: room, exploration: 0 }),
      notes: [
        `Exploration is the confidence bonus (c = ${params.exploration}) inside the learned share, shared by the hosts decided on the same statistics.`,
        params.byPrefix
          ? "Contextual: a host's /24 (/64) scored under its tags' optimistic index."
          : 'Contextual: ranked by the tags alone (byPrefix off).',
      ],
    });
  },
  merge: mergeBanditStates,
};
