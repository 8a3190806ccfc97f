import { fnv1a32 } from '../src/core/index.js';
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
import type { PortStats } from './stats/port-stats.js';
import type { HostContext, HostResult, ParameterSpec, StrategyDefinition } from './types.js';

export interface LinUcbParams extends BanditParams {
  /** Width of the confidence bonus. */
  readonly exploration: number;
  /** Buckets the host's network prefix is hashed into. */
  readonly prefixBuckets: number;
  /** How many of the host's previously open ports are features (lowest first). */
  readonly historyFeatures: number;
}

const parameters: ParameterSpec[] = [
  {
    name: 'exploration',
    type: 'number',
    default: 1,
    min: 0,
    max: 100,
    description: 'Width c of the confidence bonus: score = p + c * sqrt(2 ln N) * sqrt(p(1-p) / (n_eff + 1)).',
  },
  {
    name: 'prefixBuckets',
    type: 'integer',
    default: 256,
    min: 1,
    max: 65536,
    description:
      "Buckets the host's network prefix (/24, /64) is hashed into: the prefix feature's dimension, which bounds the state on large scopes.",
  },
  {
    name: 'historyFeatures',
    type: 'integer',
    default: 3,
    min: 0,
    max: 64,
    description: "How many of the host's previously open ports are features (learning costs probes x features per host).",
  },
  ...banditParameters(300),
];

const logit = (p: number): number => Math.log(p / (1 - p));
const sigmoid = (x: number): number => 1 / (1 + Math.exp(-x));
const clampP = (p: number): number => Math.min(1 - 1e-9, Math.max(1e-9, p));

/** The context features of a host: tags (one-hot), hashed prefix, previously open ports (bag). */
function contextFeatures(host: Pick<HostContext, 'tags' | 'prefix'>, buckets: number): string[] {
  return [...host.tags.map((t) => `t:${t}`), `n:${fnv1a32(host.prefix) % buckets}`];
}

function historyFeatureList(previousOpen: readonly number[], limit: number): string[] {
  return previousOpen.slice(0, limit).map((p) => `o:${p}`);
}

interface Ranked {
  readonly version: number;
  readonly ports: readonly number[];
  /** Upper scores of `ports`, same order (descending). */
  readonly scores: Float64Array;
  /** Log-odds estimate and summed variance terms of each port, by port. */
  readonly logOdds: Map<number, number>;
  readonly invN: Map<number, number>;
  readonly logN: number;
  /** Log-odds and inverse evidence of ports outside `ports`, filled lazily (same version). */
  readonly outside: Map<number, readonly [number, number]>;
}

/**
 * Contextual linear UCB over features, kept tractable (see docs/strategies.md, lin-ucb):
 * a disjoint model per candidate port, linear in log-odds over sparse binary features, with a
 * diagonal design matrix, i.e. each feature's coefficient is estimated on its own:
 *
 *   logit p(port | host) = logit m_scope(port) + sum_f [logit m_f(port) - logit m_scope(port)]
 *
 * m_f is the posterior mean of the port among hosts having feature f (shrunk toward the scope by
 * tagStrength), m_scope the scope posterior (shrunk toward nmap). The bonus uses the summed
 * inverse evidence of the active features. Features: tags one-hot, the prefix hashed into
 * `prefixBuckets`, and the host's first `historyFeatures` previously open ports. Learning costs
 * probes x (2 + tags + historyFeatures) counter updates per host; choosing costs one cached
 * ranking per (tags, prefix bucket) plus an adjustment of the ports that history features have
 * seen open and whose odds it at least doubles (its positive associations); a history feature's
 * weaker or negative evidence is not used.
 */
function rankContext(stats: PortStats, features: readonly string[], params: LinUcbParams): Omit<Ranked, 'version' | 'outside'> {
  const ports = stats.candidates(features, params.candidatePool);
  const logOdds = new Map<number, number>();
  const invN = new Map<number, number>();
  const score: Array<[number, number]> = [];
  const hosts = Math.max(stats.observations(null), 1);
  const logN = Math.log(Math.max(Math.E, 1 + hosts));
  for (const port of ports) {
    const scope = stats.scopePosterior(port);
    const ns = scope.alpha + scope.beta;
    const ms = clampP(scope.alpha / ns);
    let z = logit(ms);
    let inv = 1 / ns;
    for (const f of features) {
      const t = stats.tagPosterior(f, port, ms);
      const n = t.alpha + t.beta;
      z += logit(clampP(t.alpha / n)) - logit(ms);
      inv += 1 / n;
    }
    logOdds.set(port, z);
    invN.set(port, inv);
    score.push([port, upper(z, inv, logN, params.exploration)]);
  }
  score.sort((a, b) => b[1] - a[1] || a[0] - b[0]);
  return { ports: score.map((s) => s[0]), scores: Float64Array.from(score, (s) => s[1]), logOdds, invN, logN };
}

function upper(z: number, inv: number, logN: number, c: number): number {
  const p = sigmoid(z);
  return p + c * Math.sqrt(2 * logN) * Math.sqrt((p * (1 - p) * inv) / (1 + inv));
}

/** Disjoint, diagonal LinUCB over tags, hashed prefix and previously open ports (see above). */
export const linUcbStrategy: StrategyDefinition<LinUcbParams, BanditState> = {
  name: 'lin-ucb',
  summary: 'Contextual linear UCB (disjoint per port, diagonal) over tags, hashed network prefix and the host’s previously open ports.',
  parameters,
  parseParams: (raw) => parseParameters<LinUcbParams>('lin-ucb', parameters, raw),
  create(options, params, env, state) {
    const stats = restoreStats(env.catalog, params, state);
    const discovery = restoreDiscovery(options, params, env.catalog, state?.discovery);
    const cache = new Map<string, Ranked>();
    // A history feature's positive associations, per statistics version: ports it has seen open
    // whose odds it at least doubles, with its log-odds shift and inverse evidence. Weaker
    // associations are noise, and skipping them keeps per-host cost bounded on large scopes.
    const lifts = new Map<string, { version: number; rows: readonly (readonly [number, number, number])[] }>();
    const liftsOf = (group: string): readonly (readonly [number, number, number])[] => {
      const hit = lifts.get(group);
      if (hit && hit.version === stats.version) return hit.rows;
      const rows: Array<readonly [number, number, number]> = [];
      for (const port of stats.openPorts(group)) {
        const scope = stats.scopePosterior(port);
        const ms = clampP(scope.alpha / (scope.alpha + scope.beta));
        const t = stats.tagPosterior(group, port, ms);
        const dz = logit(clampP(t.alpha / (t.alpha + t.beta))) - logit(ms);
        if (dz >= Math.LN2) rows.push([port, dz, 1 / (t.alpha + t.beta)]);
      }
      lifts.set(group, { version: stats.version, rows });
      return rows;
    };
    const ranked = (features: readonly string[]): Ranked => {
      const key = features.join('\u0000');
      const hit = cache.get(key);
      if (hit && hit.version === stats.version) return hit;
      if (hit === undefined && cache.size > 4096) cache.clear();
      const r = { version: stats.version, outside: new Map<number, readonly [number, number]>(), ...rankContext(stats, features, params) };
      cache.set(key, r);
      return r;
    };
    return createBanditStrategy({
      name: 'lin-ucb',
      options,
      env,
      params,
      ...(state !== undefined ? { state } : {}),
      stats,
      discovery,
      groups: (r: HostResult) => [
        ...contextFeatures(r, params.prefixBuckets),
        ...historyFeatureList(r.previousOpen, params.historyFeatures),
      ],
      explainGroup: (g) => g.startsWith('t:'),
      rank(round, _rng, picker) {
        const features = contextFeatures(round, params.prefixBuckets);
        const base = ranked(features);
        const history = historyFeatureList(round.previousOpen, params.historyFeatures);
        // Ports a history feature is positively associated with get their score adjusted.
        const shift = new Map<number, [number, number]>();
        for (const h of history) {
          for (const [port, dz, inv] of liftsOf(h)) {
            const cur = shift.get(port);
            if (cur) {
              cur[0] += dz;
              cur[1] += inv;
            } else shift.set(port, [dz, inv]);
          }
        }
        const touched = new Set<number>(shift.keys());
        const adjusted: Array<[number, number]> = [];
        for (const [port, [dz, dinv]] of shift) {
          if (!picker.canTake(port)) continue;
          let z = base.logOdds.get(port);
          let inv = base.invN.get(port);
          if (z === undefined || inv === undefined) {
            // Hosts sharing a context share these ports' estimates until the statistics change.
            let known = base.outside.get(port);
            if (!known) {
              const scope = stats.scopePosterior(port);
              const ms = clampP(scope.alpha / (scope.alpha + scope.beta));
              let oz = logit(ms);
              let oinv = 1 / (scope.alpha + scope.beta);
              for (const f of features) {
                const t = stats.tagPosterior(f, port, ms);
                oz += logit(clampP(t.alpha / (t.alpha + t.beta))) - logit(ms);
                oinv += 1 / (t.alpha + t.beta);
              }
              known = [oz, oinv];
              base.outside.set(port, known);
            }
            [z, inv] = known;
          }
          adjusted.push([port, upper(z + dz, inv + dinv, base.logN, params.exploration)]);
        }
        adjusted.sort((a, b) => b[1] - a[1] || a[0] - b[0]);
        // Merge the adjusted ports into the context's ranking by score.
        let i = 0;
        let j = 0;
        while (!picker.full && (i < base.ports.length || j < adjusted.length)) {
          const bp = base.ports[i];
          if (bp !== undefined && touched.has(bp)) {
            i++;
            continue;
          }
          if (j < adjusted.length && (bp === undefined || adjusted[j]![1] >= base.scores[i]!)) picker.add(adjusted[j++]![0]);
          else {
            picker.add(bp!);
            i++;
          }
        }
      },
      split: (room) => ({ learned: room, exploration: 0 }),
      notes: [
        `Features: tags (t:), prefix hashed into ${params.prefixBuckets} buckets (n:), up to ${params.historyFeatures} previously open ports (o:); explain lists tag groups.`,
        `Exploration is the confidence bonus (c = ${params.exploration}) inside the learned share.`,
      ],
    });
  },
  merge: mergeBanditStates,
};
