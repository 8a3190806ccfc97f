// Lanczos coefficients (g = 7, n = 9).
const LANCZOS = Float64Array.of(
  0.99999999999980993,
  676.5203681218851,
  -1259.1392167224028,
  771.32342877765313,
  -176.61502916214059,
  12.507343278686905,
  -0.13857109526572012,
  9.9843695780195716e-6,
  1.5056327351493116e-7,
);

/** Natural log of the gamma function (Lanczos, g = 7, n = 9; ~15 significant digits). */
export function logGamma(x: number): number {
  if (x < 0.5) return Math.log(Math.PI / Math.sin(Math.PI * x)) - logGamma(1 - x);
  const z = x - 1;
  let a = LANCZOS[0]!;
  const t = z + 7.5;
  for (let i = 1; i < 9; i++) a += LANCZOS[i]! / (z + i);
  return 0.5 * Math.log(2 * Math.PI) + (z + 0.5) * Math.log(t) - t + Math.log(a);
}

/** ln B(a, b) - as regularizedBeta computes it, so a cached value gives the same results. */
export function logBeta(a: number, b: number): number {
  return logGamma(a + b) - logGamma(a) - logGamma(b);
}

// Continued fraction of the incomplete beta function (modified Lentz, as in Numerical Recipes).
function betaContinuedFraction(a: number, b: number, x: number): number {
  const tiny = 1e-300;
  let c = 1;
  let d = 1 - ((a + b) * x) / (a + 1);
  if (Math.abs(d) < tiny) d = tiny;
  d = 1 / d;
  let h = d;
  for (let m = 1; m <= 300; m++) {
    const m2 = 2 * m;
    let aa = (m * (b - m) * x) / ((a + m2 - 1) * (a + m2));
    d = 1 + aa * d;
    if (Math.abs(d) < tiny) d = tiny;
    c = 1 + aa / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    h *= d * c;
    aa = (-(a + m) * (a + b + m) * x) / ((a + m2) * (a + m2 + 1));
    d = 1 + aa * d;
    if (Math.abs(d) < tiny) d = tiny;
    c = 1 + aa / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    const del = d * c;
    h *= del;
    if (Math.abs(del - 1) < 1e-12) break;
  }
  return h;
}

/**
 * The regularised incomplete beta function I_x(a, b) = P(Beta(a, b) <= x); `lnB` is ln B(a, b)
 * when the caller has it (logBeta), which saves three log-gamma evaluations.
 */
export function regularizedBeta(x: number, a: number, b: number, lnB = Number.NaN): number {
  if (x <= 0) return 0;
  if (x >= 1) return 1;
  const front = Math.exp((Number.isNaN(lnB) ? logBeta(a, b) : lnB) + a * Math.log(x) + b * Math.log1p(-x));
  if (x < (a + 1) / (a + b + 2)) return (front * betaContinuedFraction(a, b, x)) / a;
  return 1 - (front * betaContinuedFraction(b, a, 1 - x)) / b;
}

/** P(Beta(a, b) > x); `lnB` as for regularizedBeta. */
export function betaTail(x: number, a: number, b: number, lnB = Number.NaN): number {
  return Math.min(1, Math.max(0, 1 - regularizedBeta(x, a, b, lnB)));
}
