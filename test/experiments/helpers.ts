import { writeFileSync } from 'node:fs';
import { createRng } from '../../src/core/rng.js';
import { formatHeader, formatObservation } from '../../src/recording/index.js';
import { parseExperimentSpec } from '../../experiments/spec.js';
import type { CellResult, ExperimentSpec } from '../../experiments/types.js';

/**
 * A small recording file probed on all ports: `hosts` hosts in 198.18.0.0/24 with tags web/db,
 * each with a few open ports drawn from a skewed set (some on ports top-k ranks low).
 */
export function writeTinyRecording(path: string, options: { hosts: number; epochs: number; seed: string }): void {
  const rng = createRng(options.seed);
  const web = [80, 443, 8080, 8443, 22, 31337];
  const db = [22, 3306, 5432, 6379, 27017, 9200];
  const base: number[][] = [];
  const tags: string[][] = [];
  for (let h = 0; h < options.hosts; h++) {
    const pool = h % 3 === 0 ? db : web;
    tags.push([h % 3 === 0 ? 'db' : 'web']);
    base.push(pool.filter(() => rng.next() < 0.45));
  }
  const lines = [formatHeader({ name: 'tiny', probed: '1-65535' })];
  for (let e = 0; e < options.epochs; e++) {
    for (let h = 0; h < options.hosts; h++) {
      // Churn: now and then a port opens from the host's pool.
      if (rng.next() < 0.1) {
        const pool = tags[h]![0] === 'db' ? db : web;
        const p = pool[rng.int(pool.length)]!;
        if (!base[h]!.includes(p)) base[h]!.push(p);
      }
      const open = [...base[h]!].sort((a, b) => a - b);
      lines.push(formatObservation({ epoch: e, ip: `198.18.0.${h + 1}`, tags: tags[h]!, open }));
    }
  }
  writeFileSync(path, `${lines.join('\n')}\n`);
}

/** A spec over one recording file, with the given strategies, budgets and seeds. */
export function tinySpec(file: string, overrides: Record<string, unknown> = {}): ExperimentSpec {
  return parseExperimentSpec(
    {
      name: 'tiny',
      recordings: [{ file, name: 'tiny' }],
      strategies: [{ label: 'natlas-fixed', strategy: 'fixed' }, 'top-k', 'random'],
      budgets: [5, 20],
      seeds: [1, 2],
      baseline: 'natlas-fixed',
      bootstrap: { replicates: 50, seed: 'test' },
      ...overrides,
    },
    'tiny.json',
  );
}

export interface FakeHost {
  ip: string;
  tags: string[];
  total: number;
  found: number;
  probes: number;
  epochs?: number;
}

/** A hand-made cell result (for statistics and report tests only; the runner makes real ones). */
export function fakeCell(
  spec: ExperimentSpec,
  recording: string,
  strategy: string,
  budget: number,
  seed: string,
  hosts: readonly FakeHost[],
  epochs = 3,
): CellResult {
  const rec = spec.recordings.find((r) => r.name === recording)!;
  const strat = spec.strategies.find((s) => s.label === strategy)!;
  const sum = (f: (h: FakeHost) => number) => hosts.reduce((a, h) => a + f(h), 0);
  const perEpoch = Array.from({ length: epochs }, (_v, e) => ({
    epoch: e,
    hosts: hosts.length,
    // Coverage rises over epochs towards the cell's overall figure.
    total: sum((h) => h.total) / epochs,
    found: (sum((h) => h.found) / epochs) * (0.7 + (0.3 * (e + 1)) / epochs),
    probes: sum((h) => h.probes) / epochs,
  }));
  return {
    key: `${recording}-${strategy}-${budget}-${seed}`,
    version: 'test',
    cell: { recording: rec, strategy: strat, budget, seed, batch: spec.batch, order: spec.order },
    metrics: {
      total: sum((h) => h.total),
      found: sum((h) => h.found),
      probes: sum((h) => h.probes),
      hostEpochs: sum((h) => h.epochs ?? epochs),
      perEpoch,
      hosts: {
        ip: hosts.map((h) => h.ip),
        tags: hosts.map((h) => h.tags),
        total: hosts.map((h) => h.total),
        found: hosts.map((h) => h.found),
        probes: hosts.map((h) => h.probes),
        epochs: hosts.map((h) => h.epochs ?? epochs),
      },
      detection: {
        count: 10,
        detected: 8,
        censored: 2,
        mean: budget > 10 ? 0.5 : 1.5,
        median: 1,
        histogram: { '0': 4, '1': 2, '2': 1, '>=4': 1 },
      },
      detectionByTag: {},
    },
    simulation: {},
  };
}
