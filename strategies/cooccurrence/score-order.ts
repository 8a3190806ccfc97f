/**
 * Ports ordered by score, best first, ties by port ascending: the order every ranking uses,
 * computed without a comparator. A prefix's ranking is rebuilt for nearly every host a lease
 * hands out (hundreds of entries each), and sorting an index array with a comparator was most
 * of a lease's CPU (the batched bench's profile: ~18% of the coordinator). Here each entry
 * becomes one float key, the score's high IEEE word and the port, which a typed array sorts
 * natively; entries whose scores share that word are then put in exact order by insertion,
 * so the result equals the comparator sort to the bit.
 */

// The high 32-bit word of a non-negative double (sign, exponent, 20 mantissa bits) orders
// like the double itself.
const word = new Float64Array(1);
const halves = new Uint32Array(word.buffer);
const HIGH = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1 ? 1 : 0;
const TOP = 0x7ff00000; // the high word of +Infinity

/** Runs of scores sharing a high word longer than this are sorted, not ordered by insertion. */
const LONG_RUN = 32;

// Score by port for the entries being ordered (ports are unique within one call).
const scoreOf = new Float64Array(65536);

function highWord(score: number): number {
  if (score === 0) return 0; // -0 too
  word[0] = score;
  return halves[HIGH]!;
}

/** Exact comparator order, for inputs the keys cannot carry (a negative or NaN score). */
function byComparator(ports: ArrayLike<number>, scores: ArrayLike<number>, n: number): { ports: number[]; scores: number[] } {
  const order = Array.from({ length: n }, (_, i) => i);
  order.sort((a, b) => scores[b]! - scores[a]! || ports[a]! - ports[b]!);
  return { ports: order.map((i) => ports[i]!), scores: order.map((i) => scores[i]!) };
}

/**
 * The first `n` entries of `ports`/`scores` (parallel; each port once, 0-65535) ordered by
 * score descending, then port ascending. Scores are the non-negative estimates rankings hold;
 * anything else falls back to the comparator sort (same order).
 */
export function orderByScore(ports: ArrayLike<number>, scores: ArrayLike<number>, n: number): { ports: number[]; scores: number[] } {
  const keys = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const score = scores[i]!;
    if (!(score >= 0)) return byComparator(ports, scores, n);
    const port = ports[i]!;
    scoreOf[port] = score;
    // Below 2^47: an exact integer. Ascending keys: higher scores first, then lower ports.
    keys[i] = (TOP - highWord(score)) * 65536 + port;
  }
  keys.sort();
  const outPorts = new Array<number>(n);
  const outScores = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    const port = keys[i]! % 65536;
    outPorts[i] = port;
    outScores[i] = scoreOf[port]!;
  }
  // Scores that share a high word are ordered by port so far: order such a run exactly (equal
  // scores, the usual case, are in order already; a long run of unequal ones is sorted).
  for (let i = 0; i < n;) {
    const group = Math.floor(keys[i]! / 65536);
    let j = i + 1;
    while (j < n && Math.floor(keys[j]! / 65536) === group) j++;
    let ordered = true;
    for (let a = i + 1; a < j && ordered; a++) ordered = outScores[a - 1]! > outScores[a]! || outScores[a - 1] === outScores[a];
    if (ordered) {
      i = j;
      continue;
    }
    if (j - i > LONG_RUN) {
      const run = byComparator(outPorts.slice(i, j), outScores.slice(i, j), j - i);
      for (let a = i; a < j; a++) {
        outPorts[a] = run.ports[a - i]!;
        outScores[a] = run.scores[a - i]!;
      }
      i = j;
      continue;
    }
    for (let a = i + 1; a < j; a++) {
      const port = outPorts[a]!;
      const score = outScores[a]!;
      let b = a - 1;
      while (b >= i && (outScores[b]! < score || (outScores[b] === score && outPorts[b]! > port))) {
        outPorts[b + 1] = outPorts[b]!;
        outScores[b + 1] = outScores[b]!;
        b--;
      }
      outPorts[b + 1] = port;
      outScores[b + 1] = score;
    }
    i = j;
  }
  return { ports: outPorts, scores: outScores };
}

/**
 * Membership in a set of ports fixed at construction: a bitmap of the port space (8 KiB). A
 * ranking's `skip` asks it for every port it passes over (hundreds per host at large budgets),
 * where a Set or a search by halves showed in the profile.
 */
export function portSet(ports: ArrayLike<number>, n: number): (port: number) => boolean {
  const bits = new Uint32Array(2048);
  for (let i = 0; i < n; i++) {
    const port = ports[i]!;
    bits[port >>> 5]! |= 1 << (port & 31);
  }
  return (port) => (bits[port >>> 5]! & (1 << (port & 31))) !== 0;
}
