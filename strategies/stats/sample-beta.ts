import type { Rng } from '../../src/core/rng.js';

/** A standard normal draw (Box-Muller; one of the pair is discarded to stay stateless). */
export function sampleNormal(rng: Rng): number {
  let u = rng.next();
  while (u <= 0) u = rng.next();
  const v = rng.next();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
}

/** A Gamma(shape, 1) draw (Marsaglia-Tsang; shape < 1 by the boost u^(1/shape)). */
export function sampleGamma(shape: number, rng: Rng): number {
  if (shape < 1) {
    let u = rng.next();
    while (u <= 0) u = rng.next();
    return sampleGamma(shape + 1, rng) * u ** (1 / shape);
  }
  const d = shape - 1 / 3;
  const c = 1 / Math.sqrt(9 * d);
  for (;;) {
    let x: number;
    let v: number;
    do {
      x = sampleNormal(rng);
      v = 1 + c * x;
    } while (v <= 0);
    v = v * v * v;
    const u = rng.next();
    if (u < 1 - 0.0331 * x * x * x * x) return d * v;
    if (u > 0 && Math.log(u) < 0.5 * x * x + d * (1 - v + Math.log(v))) return d * v;
  }
}

// Above this many pseudo-observations a Beta is close enough to its moment-matched normal, which
// costs one normal draw instead of two gamma draws (Thompson sampling over a /16 needs the speed).
const NORMAL_APPROX_ABOVE = 200;

/** A Beta(alpha, beta) draw, in [0, 1]. */
export function sampleBeta(alpha: number, beta: number, rng: Rng): number {
  const n = alpha + beta;
  if (n > NORMAL_APPROX_ABOVE && alpha > 10 && beta > 10) {
    const m = alpha / n;
    const sd = Math.sqrt((m * (1 - m)) / (n + 1));
    return Math.min(1, Math.max(0, m + sd * sampleNormal(rng)));
  }
  const x = sampleGamma(alpha, rng);
  const y = sampleGamma(beta, rng);
  return x + y > 0 ? x / (x + y) : alpha >= beta ? 1 : 0;
}
