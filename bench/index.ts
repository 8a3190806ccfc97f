import { runBanditsBenchmark } from './bandits.js';
import { runCoordinatorBenchmark } from './coordinator.js';
import { runDiscoveryBenchmark } from './discovery.js';
import { runDiscoveryMissesBenchmark } from './discovery-misses.js';
import { runGenerateBenchmark } from './generate.js';
import { runLearningBenchmark } from './learning.js';
import { runLiveCycleBenchmark } from './live-cycle.js';
import { runRankingOrderBenchmark } from './ranking-order.js';
import { runRecordingLoadBenchmark } from './recording-load.js';
import { runReplayBenchmark } from './replay.js';
import { runScanBenchmark } from './scan.js';
import { runStoreBenchmark } from './store.js';
import { runUiBenchmark } from './ui.js';

/**
 * `npm run bench`: runs every benchmark in order and prints its figures. Add yours: one import,
 * one entry. Each reads its sizes from the environment (see the file) so it can be run small.
 */
export const benchmarks: Array<{ name: string; run: (env: NodeJS.ProcessEnv) => void | Promise<void> }> = [
  { name: 'generate', run: runGenerateBenchmark },
  { name: 'recording-load', run: runRecordingLoadBenchmark },
  { name: 'replay', run: runReplayBenchmark },
  { name: 'learning', run: runLearningBenchmark },
  { name: 'bandits', run: runBanditsBenchmark },
  { name: 'ranking-order', run: runRankingOrderBenchmark },
  { name: 'discovery', run: runDiscoveryBenchmark },
  { name: 'discovery-misses', run: runDiscoveryMissesBenchmark },
  { name: 'store', run: runStoreBenchmark },
  { name: 'coordinator', run: runCoordinatorBenchmark },
  { name: 'ui', run: runUiBenchmark },
  { name: 'scan', run: runScanBenchmark },
  { name: 'live-cycle', run: runLiveCycleBenchmark },
];

const only = process.env.PB_BENCH_ONLY?.split(',').map((s) => s.trim());
for (const b of benchmarks) {
  if (only && !only.includes(b.name)) continue;
  const started = performance.now();
  console.log(`== ${b.name}`);
  await b.run(process.env);
  console.log(`== ${b.name}: ${((performance.now() - started) / 1000).toFixed(1)} s`);
}
