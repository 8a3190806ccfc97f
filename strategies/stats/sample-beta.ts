import type { Rng } from '../../src/core/index.js';

// Ziggurat tables (Marsaglia & Tsang 2000, 128 layers): a normal draw is one uniform and a table
// lookup 98.8% of the time, against a log, a square root and a cosine for Box-Muller; Thompson
// sampling over a /16 draws hundreds of gammas per host, each needing normals.
const ZIG_R = 3.442619855899;
const ZIG_V = 9.91256303526217e-3;
const TWO_31 = 2147483648;
const zigK = new Float64Array(128);
const zigW = new Float64Array(128);
const zigF = new Float64Array(128);
{
  let dn = ZIG_R;
  let tn = dn;
  const q = ZIG_V / Math.exp(-0.5 * dn * dn);
  zigK[0] = (dn / q) * TWO_31;
  zigK[1] = 0;
  zigW[0] = q / TWO_31;
  zigW[127] = dn / TWO_31;
  zigF[0] = 1;
  zigF[127] = Math.exp(-0.5 * dn * dn);
  for (let i = 126; i >= 1; i--) {
    dn = Math.sqrt(-2 * Math.log(ZIG_V / dn + Math.exp(-0.5 * dn * dn)));
    zigK[i + 1] = (dn / tn) * TWO_31;
    tn = dn;
    zigF[i] = Math.exp(-0.5 * dn * dn);
    zigW[i] = dn / TWO_31;
  }
}

/** A uniform in (0, 1): never 0, so that its logarithm is finite. */
function positiveUniform(rng: Rng): number {
  let u = rng.next();
  while (u <= 0) u = rng.next();
  return u;
}

/** A standard normal draw (ziggurat: a signed 32-bit integer from one uniform, 128 layers). */
export function sampleNormal(rng: Rng): number {
  for (;;) {
    // rng.next() has 32 random bits; their signed integer picks the layer (low 7 bits) and the point.
    const hz = (rng.next() * 4294967296) | 0;
    const iz = hz & 127;
    const x = hz * zigW[iz]!;
    if (Math.abs(hz) < zigK[iz]!) return x;
    if (iz === 0) {
      // The base layer's tail beyond R, by Marsaglia's exponential rejection.
      let tx: number;
      let ty: number;
      do {
        tx = -Math.log(positiveUniform(rng)) / ZIG_R;
        ty = -Math.log(positiveUniform(rng));
      } while (ty + ty < tx * tx);
      return hz > 0 ? ZIG_R + tx : -ZIG_R - tx;
    }
    if (zigF[iz]! + rng.next() * (zigF[iz - 1]! - zigF[iz]!) < Math.exp(-0.5 * x * x)) return x;
  }
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
