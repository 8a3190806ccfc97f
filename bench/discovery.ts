import { realpathSync, writeFileSync } from 'node:fs';
import { mean, sampleStandardDeviation } from 'simple-statistics';
import { loadNmapServices } from '../src/catalog/index.js';
import { type SimulationResult, simulate } from '../simulator/index.js';
import { generateRecording } from '../simulator/synthetic/index.js';
import { createStrategy, getStrategy } from '../strategies/index.js';

/**
 * Issue 12's evidence: late coverage (epochs E/2 .. E-1) of every learning strategy and of top-k
 * at budgets 25 / 100 / 300, on the project's profiles and on organisation-long-tail scopes
 * (`orgtail`) generated with seeds held out from tuning, and the rollout's detection.
 * Coverage figures only (CPU seconds are printed for information; they are not a timing bench).
 *
 * Sizes by env: PB_BENCH_DISCOVERY_CASES (comma list of profile:seed, default below),
 * PB_BENCH_DISCOVERY_HOSTS (4096 = 16 /24s), PB_BENCH_DISCOVERY_EPOCHS (12),
 * PB_BENCH_DISCOVERY_BUDGETS (25,100,300), PB_BENCH_DISCOVERY_STRATEGIES (default below),
 * PB_BENCH_DISCOVERY_OUT (a JSON file for the figures), PB_BENCH_DISCOVERY_REPLAY_SEED (the replay
 * seed, default `bench`; `recording` = the case's seed, as `npm run headline` replays; a comma list
 * replays each case once per seed and prints each cell's mean and its standard error, since one
 * replay seed moves a cell by up to about a point),
 * PB_BENCH_DISCOVERY_PARAMS (strategy parameters as JSON, e.g. '{"discoveryShare":0.2}', applied to
 * every strategy that takes them; for trying a setting before it becomes a default). A case
 * `profile:seed:hosts` overrides the host count for that case (the headline's sizes).
 */

/**
 * Seeds tuned on: `tune-*`. Held out (never looked at while tuning): `holdout-*`. Issue 12's fifth
 * round pre-registered `orgtail:hx-11`, `orgtail:hx-12` and `internet:hx-13` as held-out seeds, run
 * only once its defaults were fixed (before and after). Issue 12's sixth round pre-registers
 * `orgtail:hx-21`, `orgtail:hx-22`, `orgtail:hx-24` and `internet:hx-23` (held out: run before and
 * after, never tuned on).
 */
export const DISCOVERY_CASES = [
  'orgtail:tune-1',
  'orgtail:holdout-1',
  'orgtail:holdout-2',
  'orgtail:holdout-3',
  'enterprise:bench',
  'longtail:bench',
  'internet:bench',
  'orgtail:hx-21',
  'orgtail:hx-22',
  'orgtail:hx-24',
  'internet:hx-23',
];
const STRATEGIES = ['top-k', 'epsilon-greedy', 'ucb', 'thompson', 'lin-ucb', 'cooccurrence', 'adaptive'];

/** One measured cell. */
export interface DiscoveryCell {
  readonly profile: string;
  readonly seed: string;
  readonly budget: number;
  readonly strategy: string;
  /** The replay seed of this cell (one cell per seed when several were given). */
  readonly replaySeed: string;
  /** Services found / present over the late epochs. */
  readonly late: number;
  /** Services found / present over every epoch (the README headline's figure). */
  readonly all: number;
  /** Coverage per epoch. */
  readonly perEpoch: readonly (number | null)[];
  /** Share of the rollout's hosts found in the rollout epoch and within one epoch. */
  readonly rollout0: number | null;
  readonly rollout1: number | null;
  /**
   * The first epoch the strategy found the rollout port open anywhere in the scope (null: never);
   * before the rollout epoch it was known (the one-epoch goal applies), otherwise it had to be found.
   */
  readonly rolloutKnownEpoch: number | null;
  readonly probesPerHostEpoch: number;
  readonly cpu: number;
}

function late(r: SimulationResult, from = Math.floor(r.epochs / 2)): number {
  let found = 0;
  let total = 0;
  for (const e of r.perEpoch) {
    if (e.epoch < from) continue;
    found += e.found;
    total += e.total;
  }
  return total === 0 ? 0 : found / total;
}

const pct = (x: number | null): string => (x === null ? '   -  ' : `${(100 * x).toFixed(1).padStart(5)}%`);

/** Mean and standard error of the mean of at least two values (simple-statistics). */
function meanSe(xs: number[]): { mean: number; se: number } {
  return { mean: mean(xs), se: sampleStandardDeviation(xs) / Math.sqrt(xs.length) };
}

/** Run the grid and print one line per (case, budget): each strategy's late coverage. */
export function runDiscoveryBenchmark(env: NodeJS.ProcessEnv = process.env): DiscoveryCell[] {
  const hosts = Number(env.PB_BENCH_DISCOVERY_HOSTS ?? 4096);
  const epochs = Number(env.PB_BENCH_DISCOVERY_EPOCHS ?? 12);
  const cases = env.PB_BENCH_DISCOVERY_CASES?.split(',').map((s) => s.trim()) ?? DISCOVERY_CASES;
  const budgets = (env.PB_BENCH_DISCOVERY_BUDGETS ?? '25,100,300').split(',').map(Number);
  const names = env.PB_BENCH_DISCOVERY_STRATEGIES?.split(',').map((s) => s.trim()) ?? STRATEGIES;
  const params = env.PB_BENCH_DISCOVERY_PARAMS ? (JSON.parse(env.PB_BENCH_DISCOVERY_PARAMS) as Record<string, unknown>) : {};
  const catalog = loadNmapServices();
  const cells: DiscoveryCell[] = [];
  console.log(
    `discovery: ${hosts} hosts x ${epochs} epochs; late coverage = epochs ${Math.floor(epochs / 2)}-${epochs - 1}, then coverage over every epoch; r1 = rollout hosts found within one epoch (? = the port was found nowhere in the scope before the rollout)`,
  );
  console.log(`discovery: ${'case'.padEnd(22)} budget ${names.map((n) => n.padStart(23)).join('')}`);
  for (const c of cases) {
    const [profile, seed, size] = c.split(':') as [string, string, string | undefined];
    const recording = generateRecording({ profile, hosts: size === undefined ? hosts : Number(size), epochs, seed }, catalog);
    const replaySeeds = (env.PB_BENCH_DISCOVERY_REPLAY_SEED ?? 'bench')
      .split(',')
      .map((r) => r.trim())
      .map((r) => (r === 'recording' ? seed : r));
    for (const budget of budgets) {
      const row: string[] = [];
      for (const strategy of names) {
        const known = new Set(getStrategy(strategy).parameters.map((p) => p.name));
        const own = Object.fromEntries(Object.entries(params).filter(([k]) => known.has(k)));
        const mine: DiscoveryCell[] = [];
        let rollout: SimulationResult['rollout'] = null;
        for (const replaySeed of replaySeeds) {
          const s = createStrategy({ strategy, budget, params: own }, { catalog });
          const before = process.cpuUsage();
          const r = simulate(recording, s, { seed: replaySeed });
          const used = process.cpuUsage(before);
          rollout = r.rollout;
          mine.push({
            profile,
            seed,
            budget,
            strategy,
            replaySeed,
            late: late(r),
            all: late(r, 0),
            perEpoch: r.perEpoch.map((e) => e.coverage),
            rollout0: r.rollout?.within0 ?? null,
            rollout1: r.rollout?.within1 ?? null,
            rolloutKnownEpoch: r.rollout?.knownEpoch ?? null,
            probesPerHostEpoch: r.perEpoch.reduce((a, e) => a + e.probes, 0) / recording.size,
            cpu: (used.user + used.system) / 1e6,
          });
        }
        cells.push(...mine);
        if (mine.length > 1) {
          // Several replay seeds: the late coverage's mean and standard error, the all-epoch mean.
          const l = meanSe(mine.map((c) => c.late));
          const a = meanSe(mine.map((c) => c.all));
          row.push(`${pct(l.mean)} ±${(100 * l.se).toFixed(2)} ${pct(a.mean)}`.padStart(23));
          continue;
        }
        const cell = mine[0]!;
        // r1's `?`: the rollout port was not found anywhere in the scope before the rollout epoch.
        const unknown = rollout !== null && (rollout.knownEpoch === null || rollout.knownEpoch >= rollout.epoch);
        row.push(
          `${pct(cell.late)} ${pct(cell.all)} r1 ${cell.rollout1 === null ? '  - ' : (100 * cell.rollout1).toFixed(0).padStart(3)}${unknown ? '?' : ' '}`.padStart(
            23,
          ),
        );
      }
      console.log(`discovery: ${c.padEnd(22)} ${String(budget).padStart(6)} ${row.join('')}`);
    }
  }
  if (env.PB_BENCH_DISCOVERY_OUT) writeFileSync(env.PB_BENCH_DISCOVERY_OUT, `${JSON.stringify(cells, null, 1)}\n`);
  return cells;
}

const invokedDirectly = process.argv[1] !== undefined && import.meta.url === new URL(`file://${realpathSync(process.argv[1])}`).href;
if (invokedDirectly) runDiscoveryBenchmark();
