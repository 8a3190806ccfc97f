import type { PortStats } from '../stats/port-stats.js';
import type { PortPicker } from '../port-picker.js';
import { type PairCounts, conditionalEstimate } from './pair-counts.js';
import { orderByScore, portSet } from './score-order.js';

/** Ports with scores, best first (parallel arrays). */
export interface Ranking {
  readonly ports: readonly number[];
  readonly scores: readonly number[];
  /** Score by port, when the ranking keeps one (cached marginal rankings do). */
  readonly byPort?: ReadonlyMap<number, number>;
  /** Multiplies every score (a prior ranking shrunk by a prefix's sweeps); 1 when absent. */
  readonly scale?: number;
  /** Ports this ranking must not offer (another ranking scores them instead). */
  readonly skip?: (port: number) => boolean;
}

export const EMPTY_RANKING: Ranking = Object.freeze({ ports: [], scores: [] });

/**
 * Candidate ports of a group ranked by posterior mean (the greedy choice for a semi-bandit: the
 * expected number of services found is the sum of the chosen ports' probabilities). Rankings
 * are cached per group key until the statistics change (once per observed batch), so a /16
 * replay sorts a few thousand times, not once per host.
 */
export class MeanRanking {
  private readonly stats: PortStats;
  private readonly priorTop: number;
  private version = -1;
  private readonly cache = new Map<string, Ranking>();

  /** `priorTop`: nmap's most frequent ports always kept as candidates (0 = only ports seen open). */
  constructor(stats: PortStats, priorTop: number) {
    this.stats = stats;
    this.priorTop = priorTop;
  }

  /** The ranking for a host with these tags (or, for a prefix model, `[prefix]`). */
  rank(tags: readonly string[]): Ranking {
    if (this.version !== this.stats.version) {
      this.cache.clear();
      this.version = this.stats.version;
    }
    const key = tags.join('\u0000');
    let ranking = this.cache.get(key);
    if (ranking === undefined) {
      const candidates = this.stats.candidates(tags, this.priorTop);
      const means = candidates.map((port) => this.stats.mean(tags, port));
      const { ports, scores } = orderByScore(candidates, means, candidates.length);
      ranking = { ports, scores, byPort: new Map(candidates.map((port, i) => [port, means[i]!])) };
      this.cache.set(key, ranking);
    }
    return ranking;
  }
}

/**
 * A prefix's ranking under its tags' (hierarchical, not a max): a port's estimate in the prefix
 * is Beta(k m_tag + S_p, k (1 - m_tag) + F_p), with m_tag the tag estimate (which is itself
 * shrunk toward the scope and nmap) and S_p, F_p the prefix's own discounted successes and
 * failures. A subnet's evidence can thus veto a port its tag believes in (other subnets' own
 * ports) as well as promote its own. Ports without an entry in the prefix have only its sweeps
 * as failures, which scale every tag score by k / (k + sweeps) and keep the tag's order: the
 * tag ranking serves them, scaled, and the prefix's entries are rescored (cached per prefix
 * until the statistics change).
 */
export class PrefixUnderTag {
  private version = -1;
  private readonly cache = new Map<string, Ranking[]>();

  constructor(
    private readonly tagStats: PortStats,
    private readonly tagRanking: MeanRanking,
    private readonly prefixStats: PortStats,
    private readonly strength: number,
  ) {}

  /** The rankings (prefix entries rescored, the tag ranking scaled without them) for one host. */
  rank(tags: readonly string[], prefix: string): Ranking[] {
    const v = this.tagStats.version * 1e9 + this.prefixStats.version;
    if (v !== this.version) {
      this.cache.clear();
      this.version = v;
    }
    const key = `${prefix}\u0001${tags.join('\u0000')}`;
    let hit = this.cache.get(key);
    if (hit === undefined) {
      const byTag = this.tagRanking.rank(tags);
      const known = byTag.byPort;
      const k = this.strength;
      const sweeps = this.prefixStats.sweeps(prefix);
      // Parallel arrays ordered without a comparator (score-order.ts): a prefix holds hundreds of
      // entries (nmap's top ports are tracked), rescored for nearly every host of a shuffled
      // walk; a tuple per entry was most of the garbage of a lease, the comparator sort most of
      // its CPU.
      const size = this.prefixStats.entries(prefix).length;
      const entryPorts = new Int32Array(size);
      const entryScores = new Float64Array(size);
      let n = 0;
      this.prefixStats.forEachEntry(prefix, (port, successes, trials) => {
        const m = known?.get(port) ?? this.tagStats.mean(tags, port);
        entryPorts[n] = port;
        entryScores[n] = (k * m + successes) / (k + Math.max(trials, successes));
        n++;
      });
      const own: Ranking = orderByScore(entryPorts, entryScores, n);
      const rest: Ranking = { ports: byTag.ports, scores: byTag.scores, scale: k / (k + sweeps), skip: portSet(entryPorts, n) };
      hit = [own, rest];
      if (this.cache.size > 4096) this.cache.clear();
      this.cache.set(key, hit);
    }
    return hit;
  }
}

/**
 * Partners scored per found port: a follow-up round has at most a budget's worth of room, and a
 * port's 64 strongest partners (by raw rate) cover it; popular ports have hundreds of partners.
 */
export const MAX_PARTNERS = 64;

// Scratch for follow-up scoring: best score per port, valid where the stamp matches.
const best = new Float64Array(65536);
const bestStamp = new Uint32Array(65536);
let bestGen = 0;

/**
 * Rank the ports most likely open given the `evidence` ports found open on this host:
 * score(B) = max over A in evidence of P(B | A), each shrunk toward `marginal(B)` with
 * `strength` pseudo-trials. With `tags`, per-tag pair tables (when kept) refine the scope-wide
 * estimate the same way. Cost: MAX_PARTNERS per evidence port, never the port universe.
 */
export function rankFollowUps(
  pairs: PairCounts,
  tags: readonly string[],
  evidence: readonly number[],
  marginal: (port: number) => number,
  strength: number,
): Ranking {
  const scope = pairs.peek('*');
  if (scope === undefined || evidence.length === 0) return EMPTY_RANKING;
  bestGen++;
  if (bestGen === 0xffffffff) {
    bestStamp.fill(0);
    bestGen = 1;
  }
  const gen = bestGen;
  const touched: number[] = [];
  const tagTables = pairs.options.byTag ? tags.map((t) => pairs.peek(t)).filter((t) => t !== undefined) : [];
  for (const a of evidence) {
    const partners = scope.topPartners(a, MAX_PARTNERS);
    for (let i = 0; i < partners.ports.length; i++) {
      const b = partners.ports[i]!;
      let score = conditionalEstimate(partners.hits[i]!, partners.trials[i]!, marginal(b), strength);
      if (tagTables.length > 0) {
        // Each tag refines the scope-wide estimate; the best-informed (highest) one wins.
        let refined = 0;
        for (const t of tagTables) {
          const [h, n] = t.counts(a, b);
          refined = Math.max(refined, conditionalEstimate(h, n, score, strength));
        }
        score = refined;
      }
      if (bestStamp[b] !== gen) {
        bestStamp[b] = gen;
        best[b] = score;
        touched.push(b);
      } else if (score > best[b]!) best[b] = score;
    }
  }
  return orderByScore(
    touched,
    touched.map((p) => best[p]!),
    touched.length,
  );
}

/**
 * Add ports to the picker in descending score across several rankings (a k-way merge: a port's
 * effective score is its best score in any ranking), until the picker is full or `count` ports
 * were added. Returns how many were added.
 */
export function addByScore(picker: PortPicker, rankings: readonly Ranking[], count = Infinity): number {
  const n = rankings.length;
  if (n === 0 || count <= 0 || picker.full) return 0;
  // Each ranking's head: its first entry the picker can take and the ranking does not skip.
  // Adding a port makes only that port untakeable (canTake of every other port is unchanged,
  // and `skip` is fixed), so after each pick only the heads equal to it move on: the picks are
  // those of re-checking every head at every step, at a fraction of the calls.
  const cursor = new Array<number>(n).fill(0);
  const head = new Array<number>(n);
  const advance = (r: number): void => {
    const ranking = rankings[r]!;
    const ports = ranking.ports;
    const skip = ranking.skip;
    let i = cursor[r]!;
    while (i < ports.length && (!picker.canTake(ports[i]!) || (skip !== undefined && skip(ports[i]!)))) i++;
    cursor[r] = i;
    head[r] = i < ports.length ? ranking.scores[i]! * (ranking.scale ?? 1) : -Infinity;
  };
  for (let r = 0; r < n; r++) advance(r);
  let added = 0;
  while (added < count && !picker.full) {
    let pick = -1;
    let top = -Infinity;
    for (let r = 0; r < n; r++) {
      if (head[r]! > top) {
        top = head[r]!;
        pick = r;
      }
    }
    if (pick < 0) break;
    const port = rankings[pick]!.ports[cursor[pick]!]!;
    if (picker.add(port)) added++;
    cursor[pick]!++;
    advance(pick);
    for (let r = 0; r < n; r++) if (r !== pick && head[r]! > -Infinity && rankings[r]!.ports[cursor[r]!] === port) advance(r);
  }
  return added;
}

/**
 * Fill what room is left with nmap's ranking, then with any probeable port (a probeable set
 * that nmap knows nothing about must still be usable). Stops as soon as the picker is full.
 */
export function fillRest(picker: PortPicker, byFrequency: Iterable<number>): void {
  if (picker.full) return;
  picker.addAll(byFrequency);
  if (!picker.full) picker.addSweep();
}
