import { describe, expect, test } from 'vitest';
import { loadNmapServices } from '../../src/catalog/index.js';
import { simulate } from '../../simulator/index.js';
import { generateRecording } from '../../simulator/synthetic/index.js';
import { createStrategy } from '../../strategies/build.js';

/**
 * Learning strategies against nmap's --top-ports at equal budget, on small generated scopes
 * (seconds). Coverage is measured over the second half of the epochs, once learning had time.
 * Other learning strategies join by adding their name to LEARNERS.
 */
const LEARNERS = ['thompson'] as const;
const catalog = loadNmapServices();
const BUDGET = 50;

function lateCoverage(profile: string, strategy: string, hosts: number, epochs: number): number {
  const recording = generateRecording({ profile, hosts, epochs, seed: 'learning-vs-top-k' }, catalog);
  const result = simulate(recording, createStrategy({ strategy, budget: BUDGET }, { catalog }), { seed: 'run-1' });
  const late = result.perEpoch.slice(Math.floor(epochs / 2));
  const found = late.reduce((s, e) => s + e.found, 0);
  const total = late.reduce((s, e) => s + e.total, 0);
  expect(total).toBeGreaterThan(0);
  return found / total;
}

describe('learning strategies against top-k at equal budget', () => {
  test.each(LEARNERS)('%s beats top-k clearly where services sit on ports top-k ranks low (longtail)', (name) => {
    const topK = lateCoverage('longtail', 'top-k', 512, 8);
    const learner = lateCoverage('longtail', name, 512, 8);
    console.error(`longtail, budget ${BUDGET}: top-k ${topK.toFixed(3)}, ${name} ${learner.toFixed(3)}`);
    expect(learner).toBeGreaterThan(topK * 1.15);
  });

  test.each(LEARNERS)('%s stays within 4 points of top-k on a scope that follows nmap frequencies (internet)', (name) => {
    const topK = lateCoverage('internet', 'top-k', 512, 6);
    const learner = lateCoverage('internet', name, 512, 6);
    console.error(`internet, budget ${BUDGET}: top-k ${topK.toFixed(3)}, ${name} ${learner.toFixed(3)}`);
    expect(learner).toBeGreaterThan(topK - 0.04);
  });
});
