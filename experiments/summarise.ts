import { PortbanditError, type Rng, deriveRng, VERSION } from '../src/core/index.js';
import { type Estimate, type ReplicateWeights, drawHierarchicalWeights, percentileInterval, probesToReach, weightedSum } from './stats.js';
import type { CellResult, DetectionStats, ExperimentSpec } from './types.js';

/** The tag name that stands for "every host of the recording". */
export const ALL_TAGS = '*';

/** Coverage target for "probes to reach X% coverage". */
export const COVERAGE_TARGET = 0.9;

/** One row of the summary: a recording x strategy x budget x tag, every metric with its interval. */
export interface SummaryRow {
  readonly recording: string;
  readonly strategy: string;
  readonly budget: number;
  readonly tag: string;
  readonly seeds: number;
  /** Mean hosts per seed carrying the tag. */
  readonly hosts: number;
  /** Services found / services present (non-pseudo hosts). */
  readonly coverage: Estimate;
  /** Services found / probes. */
  readonly precision: Estimate;
  /** Probes spent per host-epoch. */
  readonly probesPerHost: Estimate;
  /** Regret against the oracle: services missed per host-epoch. */
  readonly missedPerHost: Estimate;
  /** Paired differences (this strategy minus the baseline, same hosts and seeds); null for the baseline. */
  readonly coverageDiff: Estimate | null;
  readonly precisionDiff: Estimate | null;
  readonly probesPerHostDiff: Estimate | null;
  readonly missedPerHostDiff: Estimate | null;
}

/** Probes per host-epoch needed to reach COVERAGE_TARGET, interpolated over the budgets. */
export interface ProbesToTargetRow {
  readonly recording: string;
  readonly strategy: string;
  readonly tag: string;
  readonly target: number;
  /** Null value: the target was not reached at any budget. */
  readonly probes: Estimate;
  /** Share of replicates in which the target was reached at all. */
  readonly reachedShare: number;
  readonly diff: Estimate | null;
}

/** Learning and regret curves: one point per epoch. */
export interface CurvePoint {
  readonly recording: string;
  readonly strategy: string;
  readonly budget: number;
  readonly epoch: number;
  readonly coverage: Estimate;
  /** Cumulative services missed per host up to and including this epoch. */
  readonly cumulativeMissed: Estimate;
}

/** Epochs until a newly opened service is first found, pooled over seeds. */
export interface DetectionRow {
  readonly recording: string;
  readonly strategy: string;
  readonly budget: number;
  readonly tag: string;
  readonly count: number;
  readonly detected: number;
  readonly censored: number;
  /** Mean epochs to detection among detected services; interval over seeds. */
  readonly mean: Estimate;
  /** Share detected before the end of the recording; interval over seeds. */
  readonly detectedShare: Estimate;
  readonly histogram: Readonly<Record<string, number>>;
}

export interface ExperimentSummary {
  readonly experiment: string;
  readonly version: string;
  readonly baseline: string;
  readonly confidence: number;
  readonly replicates: number;
  readonly bootstrapSeed: string;
  readonly focusBudget: number;
  readonly recordings: readonly string[];
  readonly strategies: readonly string[];
  readonly budgets: readonly number[];
  readonly seeds: readonly string[];
  /** Tags per recording, ALL_TAGS first. */
  readonly tags: Readonly<Record<string, readonly string[]>>;
  readonly rows: readonly SummaryRow[];
  readonly probesToTarget: readonly ProbesToTargetRow[];
  readonly curves: readonly CurvePoint[];
  readonly detection: readonly DetectionRow[];
}

/** Per-replicate sums of one cell group (a strategy x budget) on one tag's hosts. */
interface Sums {
  readonly found: Float64Array;
  readonly total: Float64Array;
  readonly probes: Float64Array;
  readonly hostEpochs: Float64Array;
}

const nullEstimate: Estimate = { value: null, low: null, high: null };

function estimateFrom(point: number, reps: ArrayLike<number>, confidence: number): Estimate {
  const interval = percentileInterval(Array.from(reps), confidence);
  return { value: Number.isFinite(point) ? point : null, low: interval?.low ?? null, high: interval?.high ?? null };
}

/** Per-replicate values of f(sums), replicate index 0 being the original data. */
function derive(s: Sums, f: (found: number, total: number, probes: number, hostEpochs: number) => number): Float64Array {
  const out = new Float64Array(s.found.length);
  for (let r = 0; r < out.length; r++) {
    const he = s.hostEpochs[r]!;
    out[r] = f(s.found[r]!, s.total[r]!, s.probes[r]!, he);
  }
  return out;
}

const metrics = {
  coverage: (f: number, t: number) => (t > 0 ? f / t : Number.NaN),
  precision: (f: number, _t: number, p: number) => (p > 0 ? f / p : Number.NaN),
  probesPerHost: (_f: number, _t: number, p: number, he: number) => (he > 0 ? p / he : Number.NaN),
  missedPerHost: (f: number, t: number, _p: number, he: number) => (he > 0 ? (t - f) / he : Number.NaN),
} as const;

/** Split a value array [original, rep1, rep2, ...] into an Estimate. */
function toEstimate(values: Float64Array, confidence: number): Estimate {
  return estimateFrom(values[0]!, values.subarray(1), confidence);
}

function difference(a: Float64Array, b: Float64Array): Float64Array {
  const out = new Float64Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i]! - b[i]!;
  return out;
}

interface SeedHosts {
  readonly ips: readonly string[];
  readonly tags: readonly (readonly string[])[];
}

/** Gather per-host columns of one cell restricted to a host subset, aligned with the seed's host order. */
function columnsFor(cell: CellResult, order: SeedHosts, subset: readonly number[], where: string) {
  const h = cell.metrics.hosts;
  const index = new Map<string, number>();
  h.ip.forEach((ip, i) => index.set(ip, i));
  const pick = (col: readonly number[]) =>
    Float64Array.from(subset, (i) => {
      const j = index.get(order.ips[i]!);
      if (j === undefined) {
        throw new PortbanditError('PB_ERR_EXPERIMENT', `host ${order.ips[i]} is missing from a cell of the same recording and seed`, {
          where,
        });
      }
      return col[j]!;
    });
  return { found: pick(h.found), total: pick(h.total), probes: pick(h.probes), epochs: pick(h.epochs) };
}

/**
 * Turn finished cells into statistics: bootstrap intervals for every metric (hosts resampled
 * within each seed, seeds resampled), paired differences against the baseline (the very same
 * resampled hosts and seeds), per-tag breakdowns, probes to reach 90% coverage, learning and
 * regret curves, and epochs-to-detect. Deterministic for a given spec and results.
 */
export function summariseExperiment(spec: ExperimentSpec, results: readonly CellResult[]): ExperimentSummary {
  const { confidence, replicates } = spec.bootstrap;
  const byKey = new Map<string, CellResult>();
  const k = (rec: string, strat: string, budget: number, seed: string) => `${rec}\u0000${strat}\u0000${budget}\u0000${seed}`;
  for (const r of results) byKey.set(k(r.cell.recording.name, r.cell.strategy.label, r.cell.budget, r.cell.seed), r);

  const rows: SummaryRow[] = [];
  const probesToTarget: ProbesToTargetRow[] = [];
  const curves: CurvePoint[] = [];
  const detection: DetectionRow[] = [];
  const tagsByRecording: Record<string, string[]> = {};
  const labels = spec.strategies.map((s) => s.label);

  for (const recording of spec.recordings) {
    const rec = recording.name;
    // Seeds with at least one result; host order per seed from its first cell.
    const seeds = spec.seeds.filter((seed) => labels.some((l) => spec.budgets.some((b) => byKey.has(k(rec, l, b, seed)))));
    if (seeds.length === 0) continue;
    const orders: SeedHosts[] = seeds.map((seed) => {
      const first = labels.flatMap((l) => spec.budgets.map((b) => byKey.get(k(rec, l, b, seed)))).find((c) => c !== undefined)!;
      return { ips: first.metrics.hosts.ip, tags: first.metrics.hosts.tags };
    });
    const tagSet = new Set<string>();
    for (const o of orders) for (const t of o.tags) for (const tag of t) tagSet.add(tag);
    const tags = [ALL_TAGS, ...[...tagSet].sort()];
    tagsByRecording[rec] = tags;

    for (const tag of tags) {
      const subsets = orders.map((o) => o.tags.flatMap((t, i) => (tag === ALL_TAGS || t.includes(tag) ? [i] : [])));
      const rng = deriveRng(spec.bootstrap.seed, rec, tag);
      const draws = drawHierarchicalWeights(
        subsets.map((s) => s.length),
        replicates,
        rng,
      );
      const allDraws: ReplicateWeights[] = [new Array<Float64Array | null>(seeds.length).fill(null), ...draws];
      const sumsOf = (label: string, budget: number): Sums | null => {
        const sums: Sums = {
          found: new Float64Array(allDraws.length),
          total: new Float64Array(allDraws.length),
          probes: new Float64Array(allDraws.length),
          hostEpochs: new Float64Array(allDraws.length),
        };
        for (let s = 0; s < seeds.length; s++) {
          const cell = byKey.get(k(rec, label, budget, seeds[s]!));
          if (cell === undefined) return null; // incomplete groups are not summarised
          const cols = columnsFor(cell, orders[s]!, subsets[s]!, `${rec}/${label}/${budget}/${seeds[s]}`);
          for (let r = 0; r < allDraws.length; r++) {
            const w = allDraws[r]![s] ?? null;
            if (w === null && r > 0) continue;
            sums.found[r]! += weightedSum(cols.found, w);
            sums.total[r]! += weightedSum(cols.total, w);
            sums.probes[r]! += weightedSum(cols.probes, w);
            sums.hostEpochs[r]! += weightedSum(cols.epochs, w);
          }
        }
        return sums;
      };

      const groups = new Map<string, Sums | null>();
      for (const label of labels) for (const budget of spec.budgets) groups.set(`${label}\u0000${budget}`, sumsOf(label, budget));
      const meanHosts = subsets.reduce((a, s) => a + s.length, 0) / subsets.length;
      const coverageTo = new Map<string, Float64Array>();
      for (const label of labels) {
        const points: { probes: Float64Array; coverage: Float64Array }[] = [];
        for (const budget of spec.budgets) {
          const sums = groups.get(`${label}\u0000${budget}`);
          const base = groups.get(`${spec.baseline}\u0000${budget}`);
          if (!sums) continue;
          const values = Object.fromEntries(Object.entries(metrics).map(([name, f]) => [name, derive(sums, f)])) as Record<
            keyof typeof metrics,
            Float64Array
          >;
          const baseValues =
            base && label !== spec.baseline
              ? (Object.fromEntries(Object.entries(metrics).map(([name, f]) => [name, derive(base, f)])) as Record<
                  keyof typeof metrics,
                  Float64Array
                >)
              : null;
          const diff = (name: keyof typeof metrics) =>
            baseValues ? toEstimate(difference(values[name], baseValues[name]), confidence) : null;
          rows.push({
            recording: rec,
            strategy: label,
            budget,
            tag,
            seeds: seeds.length,
            hosts: meanHosts,
            coverage: toEstimate(values.coverage, confidence),
            precision: toEstimate(values.precision, confidence),
            probesPerHost: toEstimate(values.probesPerHost, confidence),
            missedPerHost: toEstimate(values.missedPerHost, confidence),
            coverageDiff: diff('coverage'),
            precisionDiff: diff('precision'),
            probesPerHostDiff: diff('probesPerHost'),
            missedPerHostDiff: diff('missedPerHost'),
          });
          points.push({ probes: values.probesPerHost, coverage: values.coverage });
        }
        const to = new Float64Array(allDraws.length);
        for (let r = 0; r < allDraws.length; r++) {
          const pts = points.map((p) => ({ probes: p.probes[r]!, coverage: p.coverage[r]! })).sort((a, b) => a.probes - b.probes);
          to[r] = probesToReach(pts, COVERAGE_TARGET);
        }
        coverageTo.set(label, to);
      }
      for (const label of labels) {
        const to = coverageTo.get(label)!;
        const base = coverageTo.get(spec.baseline)!;
        const reps = to.subarray(1);
        const reached = reps.filter((v) => Number.isFinite(v)).length;
        probesToTarget.push({
          recording: rec,
          strategy: label,
          tag,
          target: COVERAGE_TARGET,
          probes: toEstimate(to, confidence),
          reachedShare: reps.length === 0 ? 0 : reached / reps.length,
          diff: label === spec.baseline ? null : toEstimate(difference(to, base), confidence),
        });
      }
    }

    // Curves and detection vary over seeds only (the simulator reports them per run).
    const seedRng = deriveRng(spec.bootstrap.seed, rec, 'seeds');
    const seedDraws = drawSeedCounts(seeds.length, replicates, seedRng);
    for (const label of labels) {
      for (const budget of spec.budgets) {
        const cells = seeds.map((seed) => byKey.get(k(rec, label, budget, seed)));
        if (cells.some((c) => c === undefined)) continue;
        const present = cells as CellResult[];
        const epochs = Math.max(...present.map((c) => c.metrics.perEpoch.length));
        const missedSoFar = new Float64Array(present.length);
        for (let e = 0; e < epochs; e++) {
          const found = present.map((c) => c.metrics.perEpoch[e]?.found ?? 0);
          const total = present.map((c) => c.metrics.perEpoch[e]?.total ?? 0);
          const hosts = present.map((c) => c.metrics.perEpoch[e]?.hosts ?? 0);
          present.forEach((_c, s) => (missedSoFar[s]! += total[s]! - found[s]!));
          const missed = Array.from(missedSoFar);
          curves.push({
            recording: rec,
            strategy: label,
            budget,
            epoch: present[0]!.metrics.perEpoch[e]?.epoch ?? e,
            coverage: seedRatio(found, total, seedDraws, confidence),
            cumulativeMissed: seedRatio(missed, hosts, seedDraws, confidence),
          });
        }
        const tagNames = [ALL_TAGS, ...new Set(present.flatMap((c) => Object.keys(c.metrics.detectionByTag)))];
        for (const tag of tagNames) {
          const stats = present.map((c) => (tag === ALL_TAGS ? c.metrics.detection : (c.metrics.detectionByTag[tag] ?? null)));
          if (stats.every((d) => d === null)) continue;
          detection.push(detectionRow(rec, label, budget, tag, stats, seedDraws, confidence));
        }
      }
    }
  }
  return {
    experiment: spec.name,
    version: VERSION,
    baseline: spec.baseline,
    confidence,
    replicates,
    bootstrapSeed: spec.bootstrap.seed,
    focusBudget: spec.focusBudget,
    recordings: spec.recordings.map((r) => r.name),
    strategies: labels,
    budgets: spec.budgets,
    seeds: spec.seeds,
    tags: tagsByRecording,
    rows,
    probesToTarget,
    curves,
    detection,
  };
}

/** Seed multiplicities per replicate (seeds resampled with replacement). */
function drawSeedCounts(seeds: number, replicates: number, rng: Rng): Float64Array[] {
  const out: Float64Array[] = [];
  for (let r = 0; r < replicates; r++) {
    const w = new Float64Array(seeds);
    for (let i = 0; i < seeds; i++) w[seeds === 1 ? 0 : rng.int(seeds)]! += 1;
    out.push(w);
  }
  return out;
}

function seedRatio(num: readonly number[], den: readonly number[], draws: readonly Float64Array[], confidence: number): Estimate {
  const ratio = (w: Float64Array | null) => {
    const d = weightedSum(den, w);
    return d > 0 ? weightedSum(num, w) / d : Number.NaN;
  };
  return estimateFrom(ratio(null), draws.map(ratio), confidence);
}

function detectionRow(
  recording: string,
  strategy: string,
  budget: number,
  tag: string,
  stats: readonly (DetectionStats | null)[],
  draws: readonly Float64Array[],
  confidence: number,
): DetectionRow {
  const detected = stats.map((d) => d?.detected ?? 0);
  const count = stats.map((d) => d?.count ?? 0);
  const weightedMean = stats.map((d) => (d && d.mean !== null ? d.mean * d.detected : 0));
  const histogram: Record<string, number> = {};
  for (const d of stats) for (const [bin, n] of Object.entries(d?.histogram ?? {})) histogram[bin] = (histogram[bin] ?? 0) + n;
  const sum = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0);
  return {
    recording,
    strategy,
    budget,
    tag,
    count: sum(count),
    detected: sum(detected),
    censored: sum(stats.map((d) => d?.censored ?? 0)),
    mean: sum(detected) > 0 ? seedRatio(weightedMean, detected, draws, confidence) : nullEstimate,
    detectedShare: sum(count) > 0 ? seedRatio(detected, count, draws, confidence) : nullEstimate,
    histogram,
  };
}

/** The summary as CSV: one line per recording x strategy x budget x tag, value/low/high columns. */
export function formatSummaryCsv(summary: ExperimentSummary): string {
  const est = [
    'coverage',
    'precision',
    'probesPerHost',
    'missedPerHost',
    'coverageDiff',
    'precisionDiff',
    'probesPerHostDiff',
    'missedPerHostDiff',
  ] as const;
  const header = ['recording', 'strategy', 'budget', 'tag', 'seeds', 'hosts'];
  for (const e of est) header.push(e, `${e}_low`, `${e}_high`);
  header.push('probes_to_90', 'probes_to_90_low', 'probes_to_90_high');
  header.push(
    'appeared',
    'epochs_to_detect',
    'epochs_to_detect_low',
    'epochs_to_detect_high',
    'detected_share',
    'detected_share_low',
    'detected_share_high',
  );
  const to = new Map(summary.probesToTarget.map((p) => [`${p.recording}\u0000${p.strategy}\u0000${p.tag}`, p.probes]));
  const det = new Map(summary.detection.map((d) => [`${d.recording}\u0000${d.strategy}\u0000${d.budget}\u0000${d.tag}`, d]));
  const cell = (v: string | number | null) => {
    if (v === null) return '';
    const s = typeof v === 'number' ? String(Number(v.toPrecision(6))) : v;
    return /[",\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
  };
  const lines = [header.join(',')];
  for (const r of summary.rows) {
    const values: (string | number | null)[] = [r.recording, r.strategy, r.budget, r.tag, r.seeds, r.hosts];
    for (const e of est) {
      const x = r[e];
      values.push(x?.value ?? null, x?.low ?? null, x?.high ?? null);
    }
    const p = to.get(`${r.recording}\u0000${r.strategy}\u0000${r.tag}`);
    values.push(p?.value ?? null, p?.low ?? null, p?.high ?? null);
    const d = det.get(`${r.recording}\u0000${r.strategy}\u0000${r.budget}\u0000${r.tag}`);
    values.push(
      d?.count ?? null,
      d?.mean.value ?? null,
      d?.mean.low ?? null,
      d?.mean.high ?? null,
      d?.detectedShare.value ?? null,
      d?.detectedShare.low ?? null,
      d?.detectedShare.high ?? null,
    );
    lines.push(values.map(cell).join(','));
  }
  return `${lines.join('\n')}\n`;
}
