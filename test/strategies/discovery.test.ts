import { fc, test } from '@fast-check/vitest';
import { describe, expect } from 'vitest';
import { loadNmapServices } from '../../src/catalog/index.js';
import { PortRanges } from '../../src/core/ports.js';
import { createRng } from '../../src/core/rng.js';
import type { Observation } from '../../src/recording/index.js';
import { simulate } from '../../simulator/index.js';
import { generateRecording } from '../../simulator/synthetic/index.js';
import { createStrategy } from '../../strategies/build.js';
import { CandidateOrder } from '../../strategies/discovery/candidate-order.js';
import { Discovery, type DiscoveryState, discoveryParameters, emptyDiscoveryState, mergeDiscoveryStates } from '../../strategies/discovery/discovery.js';
import { SweepYield, YIELD_PRIOR, mergeSweepPlanners } from '../../strategies/discovery/sweep-planner.js';
import { getStrategy } from '../../strategies/registry.js';
import { resolveCommonOptions } from '../../strategies/options.js';
import type { DiscoveryParams } from '../../strategies/discovery/discovery.js';
import type { HostContext, HostResult } from '../../strategies/types.js';
import { makeRecording } from '../simulator/helpers.js';

const catalog = loadNmapServices();
const defaults = Object.fromEntries(discoveryParameters(0.25).map((p) => [p.name, p.default])) as unknown as DiscoveryParams;
const PREFIX = '198.18.7.0/24';

function result(pos: number, epoch: number, open: number[]): HostResult {
  return { ip: `198.18.7.${pos}`, tags: ['lab'], prefix: PREFIX, epoch, probed: open, open, previousOpen: [], sweep: false };
}

function host(pos: number, epoch: number, previousOpen: number[], previousEpoch = epoch - 1): HostContext {
  return { ip: `198.18.7.${pos}`, tags: ['lab'], prefix: PREFIX, epoch, previousOpen, previousEpoch, probeable: PortRanges.ALL };
}

describe('the candidate order', () => {
  test('one pass holds every port exactly once: nmap table first, then a per-prefix permutation', () => {
    const order = CandidateOrder.of(catalog);
    expect(order.length).toBe(65535);
    const seen = new Uint8Array(65536);
    for (let k = 0; k < order.length; k++) seen[order.at(12345, k)]! += 1;
    expect(seen.slice(1).every((x) => x === 1)).toBe(true);
    expect(order.at(1, 0)).toBe(catalog.byFrequency[0]);
    // Two prefixes walk the rest of the port space in different orders.
    const k = order.table.length + 10;
    expect(order.at(1, k)).not.toBe(order.at(2, k));
  });
});

describe('coordinated discovery', () => {
  test.prop([fc.uniqueArray(fc.integer({ min: 1, max: 254 }), { minLength: 1, maxLength: 120 }), fc.integer({ min: 10, max: 2000 }), fc.integer({ min: 0, max: 40 })], {
    numRuns: 40,
  })('the hosts of a prefix that answered probe disjoint slices within an epoch, and the next epoch goes on where it ended', (live, budget, knownCount) => {
    const options = resolveCommonOptions({ budget });
    const d = new Discovery(options, defaults, catalog, 20);
    // Epoch 0: `live` answered (with ports open elsewhere in the scope), the others were silent.
    const known = Array.from({ length: knownCount }, (_, i) => 40000 + i);
    const epoch0 = Array.from({ length: 254 }, (_, i) => i + 1).map((pos) => result(pos, 0, live.includes(pos) ? [22, ...known.slice(0, 1)] : []));
    epoch0.push({ ...result(1, 0, known), ip: '198.18.8.1', prefix: '198.18.8.0/24' });
    d.observe(epoch0, epoch0, false);
    const slices = live.map((pos) => d.slice(host(pos, 1, [22])));
    const all = slices.flat();
    // Tier-1 ports repeat on measureHosts hosts; the untargeted tiers never repeat.
    const untargeted = all.filter((p) => !known.includes(p) && p !== 22);
    expect(new Set(untargeted).size).toBe(untargeted.length);
    // A port open elsewhere is measured on at most measureHosts hosts (plus once more if the untargeted tiers reach it).
    for (const p of [22, ...known]) expect(all.filter((x) => x === p).length).toBeLessThanOrEqual(defaults.measureHosts + 1);
    // Silent hosts get no slice.
    const silent = Array.from({ length: 254 }, (_, i) => i + 1).find((pos) => !live.includes(pos));
    if (silent !== undefined) expect(d.slice(host(silent, 1, []))).toEqual([]);
    // Epoch 1 results fix epoch 1's plan; epoch 2's untargeted slices continue the order.
    const epoch1 = live.map((pos) => result(pos, 1, [22]));
    d.observe(epoch1, epoch1, false);
    const next = live.map((pos) => d.slice(host(pos, 2, [22]))).flat().filter((p) => !known.includes(p) && p !== 22);
    // Unless two epochs hold more than a full pass, the second repeats nothing of the first.
    if (untargeted.length + next.length <= 65535 - 1 - known.length) {
      const first = new Set(untargeted);
      expect(next.filter((p) => first.has(p))).toEqual([]);
    }
  });

  test('a state restored from JSON and a state merged with an empty one give the same slices', () => {
    const options = resolveCommonOptions({ budget: 100 });
    const d = new Discovery(options, defaults, catalog, 20);
    const rs = [1, 2, 3, 5, 8, 13].map((pos) => result(pos, 0, [22, 31337]));
    d.observe(rs, rs, false);
    const saved = JSON.parse(JSON.stringify(d.toJSON()));
    const restored = new Discovery(options, defaults, catalog, 20, saved);
    const merged = new Discovery(options, defaults, catalog, 20, mergeDiscoveryStates(saved, emptyDiscoveryState()));
    for (const pos of [1, 5, 13]) {
      expect(restored.slice(host(pos, 1, [22]))).toEqual(d.slice(host(pos, 1, [22])));
      expect(merged.slice(host(pos, 1, [22]))).toEqual(d.slice(host(pos, 1, [22])));
    }
    expect(mergeDiscoveryStates(saved, emptyDiscoveryState())).toEqual(mergeDiscoveryStates(emptyDiscoveryState(), saved));
  });
});

describe('allowance by liveness', () => {
  test('silent hosts get the floor, answering hosts the rest: the average stays at the budget', () => {
    const options = resolveCommonOptions({ budget: 100 });
    const d = new Discovery(options, defaults, catalog, 20);
    const rs = Array.from({ length: 200 }, (_, i) => result(i + 1, 0, i < 80 ? [22] : []));
    d.observe(rs, rs, false);
    const rng = createRng('a');
    const live = Array.from({ length: 80 }, (_, i) => d.allowance(host(i + 1, 1, [22]), rng));
    const dead = Array.from({ length: 120 }, (_, i) => d.allowance(host(i + 81, 1, []), rng));
    expect(new Set(dead)).toEqual(new Set([10]));
    const mean = [...live, ...dead].reduce((a, b) => a + b, 0) / 200;
    expect(Math.abs(mean - 100)).toBeLessThan(1.5);
  });

  test('with a huge budget a never-visited host gets at most firstVisitCap probes, a silent one a floor', () => {
    const options = resolveCommonOptions({ budget: 65535 });
    const d = new Discovery(options, defaults, catalog, 20);
    expect(d.allowance(host(1, 0, [], -1), createRng('b'))).toBe(1000);
    const rs = Array.from({ length: 254 }, (_, i) => result(i + 1, 0, i < 16 ? [22] : []));
    d.observe(rs, rs, false);
    expect(d.allowance(host(100, 1, []), createRng('c'))).toBe(1000);
    expect(d.allowance(host(1, 1, [22]), createRng('d'))).toBe(65535);
  });
});

describe('small scopes', () => {
  test('a port outside every list is found within the number of epochs explain predicts for a full pass', () => {
    // One /24: 24 hosts answer on 22, and all of them on 47613 (no list knows it); the rest are silent.
    const hidden = 47613;
    expect(catalog.rank(hidden)).toBe(-1);
    const epochs = 40;
    const observations: Observation[] = [];
    for (let e = 0; e < epochs; e++) {
      for (let i = 1; i <= 64; i++) observations.push({ epoch: e, ip: `198.18.3.${i}`, tags: ['lab'], open: i <= 24 ? [22, hidden] : [] });
    }
    const recording = makeRecording(observations);
    const strategy = createStrategy({ strategy: 'ucb', budget: 300 }, { catalog });
    const probe = createStrategy({ strategy: 'ucb', budget: 300 }, { catalog });
    // What explain predicts after one epoch (24 answering hosts, 40 silent).
    simulate(makeRecording(observations.filter((o) => o.epoch === 0)), probe, { seed: 's' });
    const note = probe.explain(5).notes!.find((n) => n.startsWith('full pass'))!;
    const predicted = Number(/: ([\d.]+) epochs/.exec(note)![1]);
    expect(predicted).toBeGreaterThan(1);
    expect(predicted).toBeLessThan(epochs - 2);
    const r = simulate(recording, strategy, { seed: 's' });
    const first = r.perEpoch.findIndex((e) => e.found > 24 * 1);
    expect(first).toBeGreaterThan(0);
    // Epoch 0 has no slices (nothing known about liveness): the pass starts in epoch 1.
    expect(first).toBeLessThanOrEqual(Math.ceil(predicted) + 1);
  });
});

describe('the sweep tier (shared by every learner)', () => {
  const learners = ['epsilon-greedy', 'ucb', 'thompson', 'lin-ucb', 'cooccurrence', 'adaptive'];

  test.each(learners)('%s sweeps whole hosts from the shared layer, and every epoch stays at the budget on average', (name) => {
    const recording = generateRecording({ profile: 'orgtail', hosts: 1024, epochs: 5, seed: 'sweep-tier' }, catalog);
    const strategy = createStrategy({ strategy: name, budget: 100 }, { catalog });
    const swept: HostResult[] = [];
    const observe = strategy.observe.bind(strategy);
    strategy.observe = (results) => {
      for (const r of results) if (r.sweep) swept.push(r);
      return observe(results);
    };
    const result = simulate(recording, strategy, { seed: 's' });
    for (const e of result.perEpoch) expect(e.probes / e.hosts).toBeCloseTo(100, 0);
    // f = 0.6 x 100 x ~1,000 hosts / 65,535 ~ 0.9 funded sweeps per epoch from epoch 1 on.
    expect(swept.length).toBeGreaterThanOrEqual(2);
    expect(swept.every((r) => r.epoch > 0 && r.probed.length === 65535 && r.previousOpen.length > 0)).toBe(true);
    // One sweep per chosen prefix and epoch.
    const keys = swept.map((r) => `${r.epoch} ${r.prefix}`);
    expect(new Set(keys).size).toBe(keys.length);
    const state = strategy.state() as { discovery: DiscoveryState };
    expect(state.discovery.sweeps!.prefixes.some(([, last]) => last[0] >= 1)).toBe(true);
  });

  test('the sweep share follows the yield: full while sweeps find ports that spread, shrinking when they find nothing', () => {
    const y = new SweepYield();
    // Epoch 1: two sweeps find a new port each; epoch 2: 40 other hosts of the prefixes run them.
    y.observeSweep('a', 1, [40001]);
    y.observeSweep('b', 1, [40002]);
    for (let i = 0; i < 20; i++) {
      y.observeHost('a', 2, [40001]);
      y.observeHost('b', 2, [40002]);
    }
    // Before any sweep has had an epoch to earn hits, the prior gives half the share; the first
    // sweeps' hits (20 per sweep, twice the target) then lift it to the full share.
    expect(y.factor(1, 10)).toBe(YIELD_PRIOR);
    expect(y.factor(2, 10)).toBe(YIELD_PRIOR);
    expect(y.factor(3, 10)).toBe(1);
    // Later sweeps find nothing new: the share falls with their recent yield, whatever came before.
    const factors: number[] = [];
    for (let e = 2; e < 8; e++) {
      y.observeSweep('a', e, []);
      y.observeSweep('b', e, []);
      factors.push(y.factor(e + 2, 10));
    }
    for (let i = 1; i < factors.length; i++) expect(factors[i]!).toBeLessThan(factors[i - 1]!);
    expect(factors.at(-1)!).toBeLessThan(0.05);
    // A target of 0 never shrinks it.
    expect(y.factor(9, 0)).toBe(1);
  });

  test('a silent scope (nothing spreads) gets few sweeps after the first ones', () => {
    const y = new SweepYield();
    for (let e = 1; e <= 2; e++) for (const p of ['a', 'b', 'c', 'd']) y.observeSweep(p, e, [50000 + e]);
    expect(y.factor(4, 10)).toBeLessThan(0.1);
  });

  test('an adaptive state written when sweeps were its own (top level) loads into the shared layer and merges either way', () => {
    const strategy = createStrategy({ strategy: 'adaptive', budget: 100 }, { catalog });
    const recording = generateRecording({ profile: 'orgtail', hosts: 1024, epochs: 3, seed: 'legacy' }, catalog);
    simulate(recording, strategy, { seed: 's' });
    const now = strategy.state() as { discovery: DiscoveryState } & Record<string, unknown>;
    const { sweeps, sweepYield, ...discovery } = now.discovery;
    expect(sweeps!.prefixes.length).toBeGreaterThan(0);
    const legacy = { ...now, discovery, sweeps, sweepYield };
    const restored = createStrategy({ strategy: 'adaptive', budget: 100 }, { catalog }, legacy);
    expect((restored.state() as { discovery: DiscoveryState }).discovery.sweeps).toEqual(sweeps);
    expect((restored.state() as { discovery: DiscoveryState }).discovery.sweepYield).toEqual(sweepYield);
    const merge = getStrategy('adaptive').merge;
    expect(merge(legacy, now)).toEqual(merge(now, legacy));
    expect((merge(legacy, now) as { discovery: DiscoveryState }).discovery.sweeps).toEqual(mergeSweepPlanners(sweeps!, sweeps!));
  });
});
