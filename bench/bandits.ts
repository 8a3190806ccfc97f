import { realpathSync } from 'node:fs';
import { loadNmapServices } from '../src/catalog/index.js';
import { generateRecording } from '../simulator/synthetic/index.js';
import { simulate } from '../simulator/index.js';
import { createStrategy } from '../strategies/index.js';

/**
 * Bandits benchmark: the per-port learners against the baselines at equal budget, on the
 * `longtail` scope (services on ports nmap ranks low) and the `internet` scope (nmap's
 * frequencies exactly). Prints coverage over the last half of the epochs, the ratio to `top-k`,
 * and `fixed` (nmap's top 1,000) as the reference at ten times the probes. Wall and CPU seconds
 * are both printed: on the shared 2-core machine wall time mostly measures the other load. Sizes by env:
 *   PB_BENCH_BANDITS_HOSTS (4096), PB_BENCH_BANDITS_EPOCHS (12), PB_BENCH_BANDITS_BUDGET (100),
 *   PB_BENCH_BANDITS_STRATEGIES (default "epsilon-greedy,ucb,thompson,lin-ucb").
 */
export function runBanditsBenchmark(env: NodeJS.ProcessEnv = process.env): void {
  const hosts = Number(env.PB_BENCH_BANDITS_HOSTS ?? 4096);
  const epochs = Number(env.PB_BENCH_BANDITS_EPOCHS ?? 12);
  const budget = Number(env.PB_BENCH_BANDITS_BUDGET ?? 100);
  const learners = (env.PB_BENCH_BANDITS_STRATEGIES ?? 'epsilon-greedy,ucb,thompson,lin-ucb').split(',').map((s) => s.trim());
  const catalog = loadNmapServices();
  for (const profile of ['longtail', 'internet']) {
    const recording = generateRecording({ profile, hosts, epochs, seed: 'bench-bandits' }, catalog);
    const run = (strategy: string, b: number) => {
      const t = performance.now();
      const cpu = process.cpuUsage();
      const r = simulate(recording, createStrategy({ strategy, budget: b }, { catalog }), { seed: 'bench' });
      const late = r.perEpoch.slice(Math.floor(epochs / 2));
      const found = late.reduce((s, e) => s + e.found, 0);
      const total = late.reduce((s, e) => s + e.total, 0);
      const probes = late.reduce((s, e) => s + e.probes, 0);
      const used = process.cpuUsage(cpu);
      return {
        coverage: total > 0 ? found / total : 0,
        found,
        probes,
        seconds: (performance.now() - t) / 1000,
        cpuSeconds: (used.user + used.system) / 1e6,
        hostEpochs: r.hostEpochs,
      };
    };
    const line = (name: string, r: ReturnType<typeof run>, base?: ReturnType<typeof run>) =>
      console.log(
        `bandits: ${profile.padEnd(8)} ${name.padEnd(15)} late coverage ${(100 * r.coverage).toFixed(2).padStart(6)}%  found ${String(r.found).padStart(7)}  probes ${String(r.probes).padStart(9)}` +
          (base ? `  ${(r.coverage / base.coverage).toFixed(2)}x top-k` : '') +
          `  ${r.seconds.toFixed(1)} s (cpu ${r.cpuSeconds.toFixed(1)} s, ${Math.round(r.hostEpochs / r.cpuSeconds)} host-decisions/cpu-s)`,
      );
    console.log(
      `bandits: ${profile} scope ${hosts} hosts x ${epochs} epochs, budget ${budget}; late = epochs ${Math.floor(epochs / 2)}-${epochs - 1}`,
    );
    line(`fixed@1000`, run('fixed', 1000));
    const base = run('top-k', budget);
    line('top-k', base);
    for (const name of learners) line(name, run(name, budget), base);
  }
}

const invokedDirectly = process.argv[1] !== undefined && import.meta.url === new URL(`file://${realpathSync(process.argv[1])}`).href;
if (invokedDirectly) runBanditsBenchmark();
