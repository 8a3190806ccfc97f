import {
  type BanditParams,
  type BanditState,
  banditParameters,
  createBanditStrategy,
  mergeBanditStates,
  restoreDiscovery,
  restoreStats,
} from './bandit-base.js';
import { parseParameters } from './options.js';
import type { PortPicker } from './port-picker.js';
import type { PortStats } from './stats/port-stats.js';
import type { ParameterSpec, StrategyDefinition } from './types.js';

export interface UcbParams extends BanditParams {
  /** Width of the confidence bonus (c). */
  readonly exploration: number;
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
  ...banditParameters(300),
];

/**
 * The candidates of one context under their optimistic index, for a batch of hosts decided on the
 * same statistics: index = m + c * sqrt(2 ln N) * sd, with m and sd the mean and standard
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
class BatchIndex {
  private readonly ports: readonly number[];
  private readonly mean: Float64Array;
  private readonly trials: Float64Array;
  private readonly pending: Float64Array;
  private readonly width: number;
  // A max-heap of candidate indices by `key`.
  private readonly key: Float64Array;
  private readonly heap: Int32Array;
  private size: number;

  constructor(stats: PortStats, tags: readonly string[], params: UcbParams) {
    const t = stats.table(tags, params.candidatePool);
    const n0 = tags.length === 0 ? stats.observations(null) : Math.max(...tags.map((tag) => stats.observations(tag)));
    this.width = params.exploration * Math.sqrt(2 * Math.log(Math.max(Math.E, 1 + n0)));
    this.ports = t.ports;
    this.mean = t.mean;
    const count = t.ports.length;
    this.trials = new Float64Array(count);
    this.pending = new Float64Array(count);
    this.key = new Float64Array(count);
    this.heap = new Int32Array(count);
    for (let i = 0; i < count; i++) {
      this.trials[i] = t.alpha[i]! + t.beta[i]!;
      this.key[i] = this.index(i);
      this.heap[i] = i;
    }
    this.size = count;
    for (let i = (count >> 1) - 1; i >= 0; i--) this.down(i);
  }

  private index(i: number): number {
    const m = this.mean[i]!;
    return m + this.width * Math.sqrt((m * (1 - m)) / (this.trials[i]! + this.pending[i]! + 1));
  }

  private before(a: number, b: number): boolean {
    const ka = this.key[a]!;
    const kb = this.key[b]!;
    return ka > kb || (ka === kb && this.ports[a]! < this.ports[b]!);
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

  private pop(): number {
    const top = this.heap[0]!;
    this.size--;
    if (this.size > 0) {
      this.heap[0] = this.heap[this.size]!;
      this.down(0);
    }
    return top;
  }

  private push(i: number): void {
    this.heap[this.size] = i;
    this.up(this.size++);
  }

  /** Fill the picker by descending index; what it takes counts as pending for the next hosts. */
  fill(picker: PortPicker): void {
    const popped: number[] = [];
    while (!picker.full && this.size > 0) {
      const i = this.pop();
      popped.push(i);
      if (picker.add(this.ports[i]!)) {
        this.pending[i]!++;
        this.key[i] = this.index(i);
      }
    }
    for (const i of popped) this.push(i);
  }
}

/**
 * Combinatorial UCB over ports (CUCB): every candidate port gets an optimistic index from its
 * per-tag posterior, and each host probes the top-k indices, with the probes handed to earlier
 * hosts on the same statistics counted as pending trials (BatchIndex).
 */
export const ucbStrategy: StrategyDefinition<UcbParams, BanditState> = {
  name: 'ucb',
  summary: 'Contextual combinatorial UCB: per-tag optimistic index (posterior mean + sqrt(2 ln N) posterior sd); top-k indices.',
  parameters,
  parseParams: (raw) => parseParameters<UcbParams>('ucb', parameters, raw),
  create(options, params, env, state) {
    const stats = restoreStats(env.catalog, params, state);
    const discovery = restoreDiscovery(options, params, env.catalog, state?.discovery);
    // One batch index per context, rebuilt when the statistics change (pending trials then become real ones).
    let version = -1;
    const indexes = new Map<string, BatchIndex>();
    return createBanditStrategy({
      name: 'ucb',
      options,
      env,
      params,
      stats,
      discovery,
      rank(round, _rng, picker) {
        if (version !== stats.version) {
          indexes.clear();
          version = stats.version;
        }
        const key = round.tags.join('\u0000');
        let index = indexes.get(key);
        if (index === undefined) indexes.set(key, (index = new BatchIndex(stats, round.tags, params)));
        index.fill(picker);
      },
      split: (room) => ({ learned: room, exploration: 0 }),
      notes: [`Exploration is the confidence bonus (c = ${params.exploration}) inside the learned share.`],
    });
  },
  merge: mergeBanditStates,
};
