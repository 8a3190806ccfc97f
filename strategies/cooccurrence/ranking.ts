import type { PortStats } from '../stats/port-stats.js';
import type { PortPicker } from '../port-picker.js';
import { type PairCounts, conditionalEstimate } from './pair-counts.js';

/** Ports with scores, best first (parallel arrays). */
export interface Ranking {
  readonly ports: readonly number[];
  readonly scores: readonly number[];
  /** Score by port, when the ranking keeps one (cached marginal rankings do). */
  readonly byPort?: ReadonlyMap<number, number>;
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
      const scored = candidates.map((port) => ({ port, score: this.stats.mean(tags, port) }));
      scored.sort((a, b) => b.score - a.score || a.port - b.port);
      ranking = { ports: scored.map((s) => s.port), scores: scored.map((s) => s.score), byPort: new Map(scored.map((s) => [s.port, s.score])) };
      this.cache.set(key, ranking);
    }
    return ranking;
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
  touched.sort((x, y) => best[y]! - best[x]! || x - y);
  return { ports: touched, scores: touched.map((p) => best[p]!) };
}

/**
 * Add ports to the picker in descending score across several rankings (a k-way merge: a port's
 * effective score is its best score in any ranking), until the picker is full or `count` ports
 * were added. Returns how many were added.
 */
export function addByScore(picker: PortPicker, rankings: readonly Ranking[], count = Infinity): number {
  const cursor = rankings.map(() => 0);
  let added = 0;
  while (added < count && !picker.full) {
    let pick = -1;
    let top = -Infinity;
    for (let r = 0; r < rankings.length; r++) {
      const ranking = rankings[r]!;
      // Skip entries the picker cannot take (already chosen, probed, excluded, not probeable).
      while (cursor[r]! < ranking.ports.length && !picker.canTake(ranking.ports[cursor[r]!]!)) cursor[r]!++;
      const i = cursor[r]!;
      if (i < ranking.ports.length && ranking.scores[i]! > top) {
        top = ranking.scores[i]!;
        pick = r;
      }
    }
    if (pick < 0) break;
    if (picker.add(rankings[pick]!.ports[cursor[pick]!]!)) added++;
    cursor[pick]!++;
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
