import { orderByScore } from '../strategies/cooccurrence/score-order.js';
import { createRng } from '../src/core/index.js';

/**
 * Ranking order benchmark: `orderByScore` (a native sort of packed keys, strategies/cooccurrence/
 * score-order.ts) against the comparator sort it replaced, on entries shaped like a /24's
 * (hundreds of tracked ports, most never seen open, so many equal or near-equal small scores, a
 * few large ones). The two run alternately in the same process, and the figure is their ratio;
 * the orders are checked equal first. Sizes by env: PB_BENCH_RANKING_SIZES (200,500,1000),
 * PB_BENCH_RANKING_ROUNDS (5; each orders ~40,000 entries per side and size).
 */
export function runRankingOrderBenchmark(env: NodeJS.ProcessEnv = process.env): void {
  const sizes = (env.PB_BENCH_RANKING_SIZES ?? '200,500,1000').split(',').map((s) => Number(s.trim()));
  const rounds = Number(env.PB_BENCH_RANKING_ROUNDS ?? 5);
  for (const n of sizes) {
    const { ports, scores } = prefixEntries(n, `bench-ranking-${n}`);
    const a = orderByScore(ports, scores, n);
    const b = comparatorOrder(ports, scores, n);
    if (a.ports.some((p, i) => p !== b.ports[i]) || a.scores.some((s, i) => s !== b.scores[i])) {
      throw new Error(`ranking order: orderByScore differs from the comparator sort at ${n} entries`);
    }
    const repeats = Math.max(1, Math.round(40_000 / n));
    let packed = 0;
    let comparator = 0;
    for (let r = 0; r < rounds; r++) {
      comparator += timeUs(() => comparatorOrder(ports, scores, n), repeats);
      packed += timeUs(() => orderByScore(ports, scores, n), repeats);
    }
    console.log(
      `ranking order, ${n} entries: comparator sort ${(comparator / rounds).toFixed(1)} us, packed keys ${(packed / rounds).toFixed(1)} us per ranking (${(comparator / packed).toFixed(2)}x faster), the same order`,
    );
  }
}

/** Microseconds per call of `f`, over `repeats` calls. */
function timeUs(f: () => unknown, repeats: number): number {
  const t = performance.now();
  for (let i = 0; i < repeats; i++) f();
  return ((performance.now() - t) * 1000) / repeats;
}

/** The order rankings had before: an index sort with a comparator (score descending, then port). */
function comparatorOrder(ports: ArrayLike<number>, scores: ArrayLike<number>, n: number): { ports: number[]; scores: number[] } {
  const order = Array.from({ length: n }, (_, i) => i);
  order.sort((x, y) => scores[y]! - scores[x]! || ports[x]! - ports[y]!);
  return { ports: order.map((i) => ports[i]!), scores: order.map((i) => scores[i]!) };
}

/** `n` distinct ports with scores as a prefix's entries get them: (k m + s) / (k + max(t, s)). */
function prefixEntries(n: number, seed: string): { ports: Int32Array; scores: Float64Array } {
  const rng = createRng(seed);
  const ports = new Int32Array(n);
  const scores = new Float64Array(n);
  const used = new Set<number>();
  const k = 4;
  for (let i = 0; i < n;) {
    const port = 1 + Math.floor(rng.next() * 65535);
    if (used.has(port)) continue;
    used.add(port);
    const open = rng.next() < 0.05;
    const successes = open ? 1 + rng.next() * 4 : 0;
    const trials = Math.floor(rng.next() * 40) * 0.95;
    // The tag estimate: a few distinct prior levels (ties), sometimes a learned one.
    const m = rng.next() < 0.7 ? [1e-4, 3e-4, 1e-3][Math.floor(rng.next() * 3)]! : rng.next() * 0.2;
    ports[i] = port;
    scores[i] = (k * m + successes) / (k + Math.max(trials, successes));
    i++;
  }
  return { ports, scores };
}
