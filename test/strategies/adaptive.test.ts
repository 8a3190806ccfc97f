import { fc, test } from '@fast-check/vitest';
import { describe, expect } from 'vitest';
import { loadNmapServices } from '../../src/catalog/index.js';
import { PortRanges } from '../../src/core/ports.js';
import { createRng } from '../../src/core/rng.js';
import { filterExplanation, formatExplanation, listStrategies } from '../../src/cli/commands/strategy.js';
import { simulate } from '../../simulator/index.js';
import { generateRecording } from '../../simulator/synthetic/index.js';
import { createStrategy } from '../../strategies/build.js';
import { SweepPlanner, mergeSweepPlanners, validateSweepPlanner } from '../../strategies/discovery/sweep-planner.js';
import { HostSession, runHostSession } from '../../strategies/host-session.js';
import type { HostContext, HostResult, Strategy } from '../../strategies/types.js';
import { strategyContract } from './contract.js';

const env = { catalog: loadNmapServices() };

function host(i: number, epoch: number, previousOpen: number[] = [], tags = ['office']): HostContext {
  return {
    ip: `198.18.${i >> 8}.${i & 255}`,
    tags,
    prefix: `198.18.${i >> 8}.0/24`,
    epoch,
    previousOpen,
    previousEpoch: previousOpen.length > 0 ? epoch - 1 : -1,
    probeable: PortRanges.ALL,
  };
}

/** Run one epoch of `count` hosts against `truth`, learning after every 64 hosts; returns the results. */
function runEpoch(
  strategy: Strategy,
  epoch: number,
  count: number,
  truth: (i: number) => readonly number[],
  previous: Map<number, readonly number[]>,
): HostResult[] {
  const all: HostResult[] = [];
  let batch: HostResult[] = [];
  for (let i = 0; i < count; i++) {
    const open = new Set(truth(i));
    const session = new HostSession(strategy, host(i, epoch, [...(previous.get(i) ?? [])]), 'test');
    const r = runHostSession(session, (p) => open.has(p));
    previous.set(i, r.open);
    batch.push(r);
    all.push(r);
    if (batch.length === 64) {
      strategy.observe(batch);
      batch = [];
    }
  }
  if (batch.length > 0) strategy.observe(batch);
  return all;
}

describe('adaptive', () => {
  test('re-verifies what was open last time first, after the must-have ports', () => {
    const strategy = createStrategy({ strategy: 'adaptive', budget: 20, mustHave: [22] }, env);
    const first = new HostSession(strategy, host(1, 3, [31337, 44444]), 'x').next()!;
    expect(first.slice(0, 3)).toEqual([22, 31337, 44444]);
  });

  test('learns a port the scope uses that no list ranks, and unlearns it once it is gone', () => {
    const strategy = createStrategy({ strategy: 'adaptive', budget: 20, params: { discount: 0.5 } }, env);
    const previous = new Map<number, readonly number[]>();
    // 40123 is found by one host's history (the org's app); every host of the /24 runs it.
    previous.set(0, [445, 40123]);
    for (let e = 0; e < 3; e++) runEpoch(strategy, e, 128, () => [445, 40123], previous);
    const estimate = () =>
      strategy
        .explain(10)
        .groups.find((g) => g.group === 'office')!
        .top.find((p) => p.port === 40123)?.estimate ?? 0;
    const during = new HostSession(strategy, host(200, 3), 'x');
    expect(runHostSession(during, (p) => p === 40123 || p === 445).open).toContain(40123);
    const learned = estimate();
    expect(learned).toBeGreaterThan(0.9);
    // The service is decommissioned everywhere: the estimate falls back toward the prior.
    for (let e = 3; e < 9; e++) runEpoch(strategy, e, 128, () => [445], previous);
    expect(estimate()).toBeLessThan(0.02);
  });

  test('sweeps keep every epoch at the budget on average, and find the subnet port no list knows', () => {
    const recording = generateRecording({ profile: 'enterprise', hosts: 1024, epochs: 5, seed: 'adaptive-test' }, env.catalog);
    const strategy = createStrategy({ strategy: 'adaptive', budget: 100 }, env);
    const result = simulate(recording, strategy, { seed: 's' });
    for (const e of result.perEpoch) expect(e.probes / e.hosts).toBeCloseTo(100, 0);
    const topK = simulate(recording, createStrategy({ strategy: 'top-k', budget: 100 }, env), { seed: 's' });
    expect(result.perEpoch.at(-1)!.coverage!).toBeGreaterThan(topK.perEpoch.at(-1)!.coverage! + 0.1);
    const x = strategy.explain(5);
    const s = x.split;
    expect(s.mustHave + s.fixed + s.history + s.learned + s.exploration).toBeCloseTo(100, 0);
  });

  test('explain lists per-tag estimates; the CLI filter keeps the asked groups and names unknown ones', () => {
    const strategy = createStrategy({ strategy: 'adaptive', budget: 20 }, env);
    const previous = new Map<number, readonly number[]>();
    runEpoch(strategy, 0, 64, (i) => (i % 2 ? [135, 139, 445] : [22]), previous);
    const x = strategy.explain(4);
    expect(x.groups.map((g) => g.group)).toEqual(['*', 'office', '198.18.0.0/24']);
    expect(x.groups[1]!.top.map((p) => p.port).sort((a, b) => a - b)).toEqual([22, 135, 139, 445]);
    expect(filterExplanation(x, undefined, false).groups.map((g) => g.group)).toEqual(['*', 'office']);
    expect(filterExplanation(x, ['office'], false).groups).toHaveLength(1);
    expect(() => filterExplanation(x, ['nope'], false)).toThrow(/no learned group "nope"/);
    expect(formatExplanation(x)).toMatch(
      /budget split per host \(probes\): must-have 0, fixed 0, history [\d.]+, learned [\d.]+, exploration [\d.]+/,
    );
  });

  test('strategy list shows every parameter with its default', () => {
    const adaptive = listStrategies().find((s) => s.name === 'adaptive')!;
    expect(adaptive.parameters.find((p) => p.name === 'sweepShare')!.default).toBe(0.7);
    expect(adaptive.parameters.find((p) => p.name === 'sliceYield')!.default).toBe(true);
    expect(adaptive.parameters.find((p) => p.name === 'priorStrength')!.default).toBe(300);
  });
});

describe('sweep planner', () => {
  /** A planner that saw `prefixes` /24s of `perPrefix` live hosts in epoch 0. */
  function seen(prefixes: number, perPrefix: number): SweepPlanner {
    const p = new SweepPlanner();
    for (let s = 0; s < prefixes; s++)
      for (let h = 0; h < perPrefix; h++) p.observe(0, `198.18.${s}.${h}`, `198.18.${s}.0/24`, false, true);
    return p;
  }

  test('sweeps exactly one host per chosen prefix and lowers the others so the epoch stays at the budget', () => {
    const planner = seen(16, 256);
    let sweeps = 0;
    let probes = 0;
    for (let s = 0; s < 16; s++) {
      for (let h = 0; h < 256; h++) {
        const o = planner.odds(1, `198.18.${s}.0/24`, `198.18.${s}.${h}`, 100, 65535, 0.6, 3);
        if (o.sweep) sweeps++;
        probes += o.sweep ? 65535 : o.others;
      }
    }
    // Paced: epoch e runs floor(f*(e+1)) - floor(f*e) of the f = 0.6*100*4096/65535 funded sweeps.
    const f = (0.6 * 100 * 4096) / 65535;
    expect(sweeps).toBe(Math.floor(2 * f) - Math.floor(f));
    expect(probes / 4096).toBeCloseTo(100, 6);
  });

  /**
   * Epoch 1 as the coordinator runs it: hosts in a shuffled order, each result learned as soon
   * as it arrives (and optionally the planner restarted from its saved state half-way).
   */
  function onlineEpoch(restartAt: number | null): { sweeps: string[]; planned: number } {
    let planner = seen(16, 256);
    const order = Array.from({ length: 4096 }, (_, i) => i);
    const rng = createRng('order');
    for (let i = order.length - 1; i > 0; i--) {
      const j = rng.int(i + 1);
      [order[i], order[j]] = [order[j]!, order[i]!];
    }
    const sweeps: string[] = [];
    let planned = 0;
    order.forEach((host, n) => {
      if (n === restartAt) planner = new SweepPlanner(JSON.parse(JSON.stringify(planner.toJSON())));
      const ip = `198.18.${host >> 8}.${host & 255}`;
      const prefix = `198.18.${host >> 8}.0/24`;
      const o = planner.odds(1, prefix, ip, 100, 65535, 0.6, 3);
      planned = o.sweeps;
      if (o.sweep) sweeps.push(prefix);
      planner.observe(1, ip, prefix, o.sweep, true);
    });
    return { sweeps, planned };
  }

  test('results of the running epoch, learned as they arrive, do not cancel or move its sweeps', () => {
    // Each result nominates a host for epoch 2; the hosts chosen for epoch 1 must still be swept.
    const { sweeps, planned } = onlineEpoch(null);
    expect(planned).toBeGreaterThan(0);
    expect(sweeps).toHaveLength(planned);
    expect(new Set(sweeps).size).toBe(planned);
  });

  test('a planner restored from its state in the middle of an epoch sweeps the same prefixes, once each', () => {
    const { sweeps, planned } = onlineEpoch(null);
    expect(sweeps).toHaveLength(planned);
    expect(onlineEpoch(2048).sweeps.sort()).toEqual(sweeps.sort());
  });

  test('the swept host rotates through the live hosts of a small prefix', () => {
    // 8 hosts, one sweep per epoch (resweepEpochs 0): over 24 epochs the sweeps should visit most
    // hosts. With FNV-1a alone, one host won 9 epochs in a row and only 2 were ever swept.
    const planner = new SweepPlanner();
    const ips = Array.from({ length: 8 }, (_, i) => `198.18.1.${10 + i}`);
    const swept: string[] = [];
    let last = '';
    for (let epoch = 0; epoch < 24; epoch++) {
      for (const ip of ips) planner.observe(epoch, ip, '198.18.1.0/24', ip === last, true);
      const chosen = ips.filter((ip) => planner.odds(epoch + 1, '198.18.1.0/24', ip, 50, 100, 0.9, 0).sweep);
      expect(chosen).toHaveLength(1);
      last = chosen[0]!;
      swept.push(last);
    }
    expect(new Set(swept).size).toBeGreaterThanOrEqual(6);
  });

  test('states written before the earlier candidate existed still load', () => {
    const state = seen(2, 4).toJSON();
    const old = { hosts: state.hosts, prefixes: state.prefixes.map(([p, swept, candidate]) => [p, swept, candidate] as const) };
    expect(validateSweepPlanner(JSON.parse(JSON.stringify(old)), 'state')).toBeTruthy();
    expect(new SweepPlanner(old).toJSON()).toEqual(state);
    expect(() => validateSweepPlanner({ hosts: [], prefixes: [['198.18.0.0/24', [-1, -1], null, 'x']] }, 'state.sweeps')).toThrow(
      /state\.sweeps\.prefixes\[0\]/,
    );
  });

  test('no sweep when the epoch budget cannot hold one, and none in the first epoch', () => {
    expect(seen(1, 100).odds(1, '198.18.0.0/24', '198.18.0.1', 100, 65535, 0.9, 3)).toMatchObject({ sweep: false, others: 100, sweeps: 0 });
    expect(new SweepPlanner().odds(0, '198.18.0.0/24', '198.18.0.1', 100, 65535, 0.9, 3)).toMatchObject({ sweep: false, others: 100 });
  });

  const events = fc.array(
    fc.record({
      epoch: fc.integer({ min: 0, max: 5 }),
      host: fc.integer({ min: 0, max: 600 }),
      sweep: fc.boolean(),
      eligible: fc.boolean(),
    }),
    { maxLength: 30 },
  );

  test.prop([events, events])('merge is order-independent', (a, b) => {
    const learn = (list: typeof a) => {
      const p = new SweepPlanner();
      for (const e of list) p.observe(e.epoch, `198.18.${e.host >> 8}.${e.host & 255}`, `198.18.${e.host >> 8}.0/24`, e.sweep, e.eligible);
      return p.toJSON();
    };
    const sa = learn(a);
    const sb = learn(b);
    expect(mergeSweepPlanners(sa, sb)).toEqual(mergeSweepPlanners(sb, sa));
    expect(new SweepPlanner(JSON.parse(JSON.stringify(sa))).toJSON()).toEqual(sa);
  });
});

test('an adaptive decision never exceeds the remaining allowance, sweep or not', () => {
  const strategy = createStrategy({ strategy: 'adaptive', budget: 30 }, env);
  const d = strategy.select({ ...host(5, 0), round: 0, probed: [], found: [], remaining: 30 }, createRng(1));
  expect(d.ports.length).toBeLessThanOrEqual(30);
  expect(new Set(d.ports).size).toBe(d.ports.length);
});

strategyContract('adaptive');

test('a host that answered nothing at its last visit gets one round; one that answered gets a follow-up round', () => {
  const strategy = createStrategy({ strategy: 'adaptive', budget: 100 }, env);
  // Silent at its last visit: all of its allowance at once (one scanner run, one lease).
  const silent = new HostSession(strategy, { ...host(7, 3), previousEpoch: 2 }, 'x');
  const only = silent.next()!;
  expect(only.length).toBe(silent.allowance);
  silent.report([]);
  expect(silent.next()).toBeNull();
  // Open ports at its last visit: a first round of seeds, then the follow-up.
  const live = new HostSession(strategy, host(8, 3, [22]), 'x');
  const seeds = live.next()!;
  expect(seeds.length).toBeLessThan(live.allowance);
  live.report([22]);
  expect(live.next()!.length).toBe(live.allowance - seeds.length);
});
