/**
 * A cheap upper bound on Beta(a, b)'s upper quantile: P(X > upperBetaBound(a, b, L)) <= 2 e^-L.
 * From X = Ga / (Ga + Gb) with Ga ~ Gamma(a), Gb ~ Gamma(b): Chernoff bounds give
 * P(Ga > y) <= e^-L for y - a - a ln(y / a) = L (y > a), and P(Gb < c b) <= e^-L for
 * c - 1 - ln c = L / b (c < 1, approximated from below by 1 - sqrt(2 L / b)). Then
 * X <= y / (y + c b) unless one of the two tails happened. Thompson sampling uses it to skip
 * candidates that cannot plausibly beat a host's bar; it costs a few Newton steps.
 */
export function upperBetaBound(a: number, b: number, logInvDelta: number): number {
  const shrink = Math.sqrt((2 * logInvDelta) / b);
  if (shrink >= 0.95) return 1;
  const y = upperGammaBound(a, logInvDelta);
  const low = b * (1 - shrink);
  return Math.min(1, y / (y + low));
}

/** A Chernoff upper bound y on Gamma(a): P(G > y) <= e^-L, solving y - a - a ln(y / a) = L. */
export function upperGammaBound(a: number, logInvDelta: number): number {
  const L = logInvDelta;
  // Newton on the convex f(y) = y - a - a ln(y/a) - L, from a point right of the root.
  let y = a + L + Math.sqrt(2 * a * L);
  for (let i = 0; i < 6; i++) {
    const f = y - a - a * Math.log(y / a) - L;
    const step = f / (1 - a / y);
    y -= step;
    if (step < 1e-6 * y) break;
  }
  return y;
}
