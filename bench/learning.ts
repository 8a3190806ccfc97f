import { realpathSync } from 'node:fs';
import { loadNmapServices } from '../src/catalog/index.js';
import type { LoadedRecording } from '../src/recording/types.js';
import { type SimulationResult, simulate } from '../simulator/index.js';
import { generateRecording } from '../simulator/synthetic/index.js';
import { createStrategy } from '../strategies/index.js';

/**
 * Issue 3's evidence. On a generated `enterprise` scope (org long tail, churn, a mid-way
 * rollout, pseudo and dead hosts), over 12 epochs:
 *   - `adaptive` at budget 100 against `fixed` (nmap's top 1,000) at budget 1,000: services
 *     found in the last half of the epochs, probes, and the ratios (bar: more services, 1/10 of
 *     the probes);
 *   - adaptive's coverage over those epochs (bar: >= 90%, PMap's 90%@125) and rollout detection
 *     (share of the rollout subnet's hosts found within 0/1/2 epochs; bar: most within 2);
 *   - adaptive again with hosts in the coordinator's order (shuffled per epoch), for comparison;
 *   - then a /16 x 12 replay per learning strategy at budget 100 with host-decisions per second
 *     (bar: < 60 s each).
 * Sizes by env: PB_BENCH_LEARNING_HOSTS (16384), PB_BENCH_LEARNING_EPOCHS (12),
 * PB_BENCH_LEARNING_SEED ("bench"), PB_BENCH_LEARNING_SPEED_HOSTS (65536; 0 skips the speed part),
 * PB_BENCH_LEARNING_STRATEGIES (comma list; default the learning strategies).
 */

const LEARNING = ['epsilon-greedy', 'ucb', 'thompson', 'lin-ucb', 'cooccurrence', 'adaptive'];

function lastHalf(r: SimulationResult): { found: number; total: number; probes: number } {
  const from = Math.floor(r.epochs / 2);
  const rows = r.perEpoch.filter((e) => e.epoch >= from);
  return {
    found: rows.reduce((a, e) => a + e.found, 0),
    total: rows.reduce((a, e) => a + e.total, 0),
    probes: rows.reduce((a, e) => a + e.probes, 0),
  };
}

function run(
  recording: LoadedRecording,
  strategy: string,
  budget: number,
  order: 'recording' | 'shuffled' = 'recording',
): { result: SimulationResult; seconds: number; cpu: number } {
  const catalog = loadNmapServices();
  const s = createStrategy({ strategy, budget }, { catalog });
  const t = performance.now();
  // CPU seconds beside wall seconds: on a shared 2-core machine the wall clock measures the load.
  const c = process.cpuUsage();
  const result = simulate(recording, s, { seed: 'bench', order });
  const used = process.cpuUsage(c);
  return { result, seconds: (performance.now() - t) / 1000, cpu: (used.user + used.system) / 1e6 };
}

const pct = (x: number | null | undefined): string => (x === null || x === undefined ? '-' : `${(100 * x).toFixed(1)}%`);

/** The headline comparison and the speed table. */
export function runLearningBenchmark(env: NodeJS.ProcessEnv = process.env): void {
  const hosts = Number(env.PB_BENCH_LEARNING_HOSTS ?? 16384);
  const epochs = Number(env.PB_BENCH_LEARNING_EPOCHS ?? 12);
  const seed = env.PB_BENCH_LEARNING_SEED ?? 'bench';
  const speedHosts = Number(env.PB_BENCH_LEARNING_SPEED_HOSTS ?? 65536);
  const listed = env.PB_BENCH_LEARNING_STRATEGIES;
  const speedList = listed ? listed.split(',').map((s) => s.trim()) : LEARNING;
  const catalog = loadNmapServices();

  const recording = generateRecording({ profile: 'enterprise', hosts, epochs, seed }, catalog);
  console.log(`learning: enterprise scope, ${hosts} hosts x ${epochs} epochs (seed ${seed}), ${recording.size} host-epochs`);
  const fixed = run(recording, 'fixed', 1000);
  const adaptive = run(recording, 'adaptive', 100);
  const f = lastHalf(fixed.result);
  const a = lastHalf(adaptive.result);
  const from = Math.floor(epochs / 2);
  console.log(`learning: services found in epochs ${from}-${epochs - 1} (of ${a.total} present):`);
  console.log(`learning:   fixed (nmap top 1,000) @1000: ${f.found} found, ${f.probes} probes, coverage ${pct(f.found / f.total)}`);
  console.log(`learning:   adaptive @100:                ${a.found} found, ${a.probes} probes, coverage ${pct(a.found / a.total)}`);
  const ratioFound = a.found / f.found;
  const ratioProbes = a.probes / f.probes;
  console.log(
    `learning:   adaptive/fixed: ${ratioFound.toFixed(3)}x the services with ${ratioProbes.toFixed(3)}x the probes (bar: > 1 with <= 0.1) ${ratioFound > 1 && ratioProbes <= 0.1 + 1e-9 ? 'PASS' : 'FAIL'}`,
  );
  const last = adaptive.result.perEpoch.at(-1);
  const lastCoverage = a.found / a.total;
  console.log(
    `learning: adaptive coverage over epochs ${from}-${epochs - 1}: ${pct(lastCoverage)}, last epoch ${pct(last?.coverage)} (bar: >= 90%) ${lastCoverage >= 0.9 ? 'PASS' : 'FAIL'}`,
  );
  console.log(`learning: adaptive per epoch: ${adaptive.result.perEpoch.map((e) => pct(e.coverage)).join(' ')}`);
  const o = adaptive.result.rollout;
  if (o) {
    console.log(
      `learning: rollout of port ${o.port} to ${o.subnet} at epoch ${o.epoch} (${o.hosts} hosts): found within 0/1/2 epochs on ${pct(o.within0)} / ${pct(o.within1)} / ${pct(o.within2)} (bar: most within 2) ${(o.within2 ?? 0) > 0.5 ? 'PASS' : 'FAIL'}`,
    );
  }
  console.log(
    `learning: replay seconds: fixed ${fixed.seconds.toFixed(1)} s (cpu ${fixed.cpu.toFixed(1)} s), adaptive ${adaptive.seconds.toFixed(1)} s (cpu ${adaptive.cpu.toFixed(1)} s)`,
  );
  // The same scope with hosts visited as the coordinator visits them (a permutation per epoch):
  // a subnet's results come back while the rest of it is still to be scanned.
  const prod = run(recording, 'adaptive', 100, 'shuffled');
  const p = lastHalf(prod.result);
  const po = prod.result.rollout;
  console.log(
    `learning: adaptive @100, hosts in the coordinator's order (--order shuffled): ${p.found} found in epochs ${from}-${epochs - 1}, ${(p.found / f.found).toFixed(3)}x fixed's services, coverage ${pct(p.found / p.total)}` +
      (po ? `; rollout found within 0/1/2 epochs on ${pct(po.within0)} / ${pct(po.within1)} / ${pct(po.within2)}` : ''),
  );

  if (speedHosts <= 0) return;
  const big = generateRecording({ profile: 'enterprise', hosts: speedHosts, epochs, seed }, catalog);
  console.log(`learning: speed, enterprise ${speedHosts} hosts x ${epochs} epochs = ${big.size} host-epochs, budget 100`);
  const base = run(big, 'top-k', 100);
  console.log(
    `learning:   top-k          ${base.seconds.toFixed(1).padStart(6)} s (cpu ${base.cpu.toFixed(1)} s) ${String(Math.round(big.size / base.seconds)).padStart(9)} host-decisions/s (baseline)`,
  );
  for (const name of speedList) {
    const r = run(big, name, 100);
    const rate = big.size / r.seconds;
    console.log(
      `learning:   ${name.padEnd(14)} ${r.seconds.toFixed(1).padStart(6)} s (cpu ${r.cpu.toFixed(1)} s) ${String(Math.round(rate)).padStart(9)} host-decisions/s  ${(r.seconds / base.seconds).toFixed(1)}x top-k's time  coverage ${pct(r.result.coverage)}  (bar: < 60 s) wall ${r.seconds < 60 ? 'PASS' : 'FAIL'}, cpu ${r.cpu < 60 ? 'PASS' : 'FAIL'}`,
    );
  }
}

const invokedDirectly = process.argv[1] !== undefined && import.meta.url === new URL(`file://${realpathSync(process.argv[1])}`).href;
if (invokedDirectly) runLearningBenchmark();
