import { describe, expect, test } from 'vitest';
import { isPortbanditError } from '../../src/core/errors.js';
import { simulate } from '../../simulator/index.js';
import { createStrategy } from '../../strategies/build.js';
import { resolveCommonOptions } from '../../strategies/options.js';
import { PortPicker } from '../../strategies/port-picker.js';
import type { Observation } from '../../src/recording/index.js';
import type { Strategy } from '../../strategies/types.js';
import { makeRecording, scriptedStrategy, tinyCatalog } from './helpers.js';

const env = { catalog: tinyCatalog };
const pseudoOpen = Array.from({ length: 20 }, (_, i) => 500 + i);

/**
 * Two epochs, four hosts: A (web) and B (db) are ordinary, C is untagged and dead, P (web)
 * answers on 20 ports, above the pseudo threshold of 10. `fixed` probes 22, 80, 443 everywhere.
 */
const twoEpochs = makeRecording([
  { epoch: 0, ip: '198.18.0.1', tags: ['web'], open: [22, 80, 443] },
  { epoch: 0, ip: '198.18.0.2', tags: ['db'], open: [22, 3306] },
  { epoch: 0, ip: '198.18.1.5', tags: [], open: [] },
  { epoch: 0, ip: '198.18.0.9', tags: ['web'], open: pseudoOpen },
  { epoch: 1, ip: '198.18.0.1', tags: ['web'], open: [22, 80, 443, 993] },
  { epoch: 1, ip: '198.18.0.2', tags: ['db'], open: [22, 900, 3306] },
  { epoch: 1, ip: '198.18.0.9', tags: ['web'], open: pseudoOpen },
]);

function fixed(ports: number[], budget: number, extra: Record<string, unknown> = {}): Strategy {
  return createStrategy({ strategy: 'fixed', params: { ports }, budget, ...extra }, env);
}

describe('simulate: metrics known by hand', () => {
  const result = simulate(twoEpochs, fixed([22, 80, 443, 3306, 900, 993], 3), { seed: 's', pseudoThreshold: 10, perHost: true });

  test('totals, coverage and precision exclude the pseudo-service host but count its probes', () => {
    expect(result).toMatchObject({
      strategy: 'fixed',
      budget: 3,
      seed: 's',
      batch: 256,
      epochs: 2,
      hosts: 4,
      hostEpochs: 7,
      pseudoThreshold: 10,
      total: 12,
      found: 8,
      probes: 21,
      pseudoHosts: 1,
      probesOnPseudo: 6,
    });
    expect(result.coverage).toBeCloseTo(8 / 12, 12);
    expect(result.precision).toBeCloseTo(8 / 21, 12);
    expect(result.probesPerHost).toBeCloseTo(3, 12);
  });

  test('perEpoch splits the totals by epoch', () => {
    expect(result.perEpoch).toEqual([
      { epoch: 0, hosts: 4, total: 5, found: 4, probes: 12, coverage: 4 / 5 },
      { epoch: 1, hosts: 3, total: 7, found: 4, probes: 9, coverage: 4 / 7 },
    ]);
  });

  test('perTag counts each tag, untagged hosts under "(untagged)", with null coverage when nothing is open', () => {
    // 993 (web) and 900 (db) appear in epoch 1, beyond `fixed`'s three ports: neither is found.
    const none = { detected: 0, vanished: 0, mean: null, median: null, histogram: { '0': 0, '1': 0, '2': 0, '3': 0, '>=4': 0 } };
    expect(result.perTag).toEqual({
      '(untagged)': {
        hosts: 1,
        total: 0,
        found: 0,
        probes: 3,
        coverage: null,
        precision: 0,
        epochsToDetect: { ...none, count: 0, censored: 0 },
      },
      db: {
        hosts: 1,
        total: 5,
        found: 2,
        probes: 6,
        coverage: 2 / 5,
        precision: 2 / 6,
        epochsToDetect: { ...none, count: 1, censored: 1 },
      },
      web: {
        hosts: 2,
        total: 7,
        found: 6,
        probes: 12,
        coverage: 6 / 7,
        precision: 6 / 12,
        epochsToDetect: { ...none, count: 1, censored: 1 },
      },
    });
  });

  test('regret is measured against the oracle that probes exactly the open ports', () => {
    expect(result.regret).toEqual({
      missed: 4,
      excessProbes: 9,
      perEpoch: [
        { epoch: 0, missed: 1, cumulativeMissed: 1, excessProbes: 7, cumulativeExcessProbes: 7 },
        { epoch: 1, missed: 3, cumulativeMissed: 4, excessProbes: 2, cumulativeExcessProbes: 9 },
      ],
    });
  });

  test('the per-host breakdown sums each host over epochs', () => {
    expect(result.perHost).toEqual({
      tagSets: twoEpochs.tagSets,
      ip: ['198.18.0.1', '198.18.0.2', '198.18.1.5', '198.18.0.9'],
      tagSet: [twoEpochs.obsTagSet[0], twoEpochs.obsTagSet[1], 0, twoEpochs.obsTagSet[3]],
      observations: [2, 2, 1, 2],
      pseudoObservations: [0, 0, 0, 2],
      total: [7, 5, 0, 0],
      found: [6, 2, 0, 0],
      probes: [6, 6, 3, 6],
    });
    const host = result.perHost!;
    expect(host.tagSets[host.tagSet[0]!]).toEqual(['web']);
  });

  test('without perHost the breakdown is absent', () => {
    const plain = simulate(twoEpochs, fixed([22], 1), { seed: 's', pseudoThreshold: 10 });
    expect(plain.perHost).toBeUndefined();
    expect('perHost' in plain).toBe(false);
  });

  test('the pseudo threshold defaults to the strategy option (1000), so 20 ports are ordinary', () => {
    const r = simulate(twoEpochs, fixed([22, 80, 443], 3), { seed: 's' });
    expect(r.pseudoThreshold).toBe(1000);
    expect(r.pseudoHosts).toBe(0);
    expect(r.total).toBe(12 + 40);
  });
});

describe('simulate: probed sets', () => {
  const rec = makeRecording(
    [
      { epoch: 0, ip: '198.18.0.1', tags: [], open: [22], probed: '1-50' },
      { epoch: 0, ip: '198.18.0.2', tags: [], open: [22, 80] },
    ],
    { probed: '1-100' },
  );

  test('ports outside an observation probed set are never probed nor counted', () => {
    const r = simulate(rec, fixed([80, 22, 200], 3), { seed: 's', perHost: true });
    // 200 is outside the header's probed set, 80 outside the first line's override.
    expect(r.perHost!.probes).toEqual([1, 2]);
    expect(r.total).toBe(3);
    expect(r.found).toBe(3);
    expect(r.probes).toBe(3);
  });

  test('a strategy that probes outside the probed set is stopped with a clear error', () => {
    const rogue: Strategy = {
      ...fixed([22], 1),
      name: 'rogue',
      select: () => ({ ports: [80], followUp: false }),
    };
    let error: unknown;
    try {
      simulate(rec, rogue, { seed: 's' });
    } catch (e) {
      error = e;
    }
    expect(isPortbanditError(error, 'PB_ERR_STRATEGY_OPTION')).toBe(true);
    expect((error as Error).message).toMatch(/rogue probed port 80 on 198\.18\.0\.1 in epoch 0, outside the recording's probed set 1-50/);
  });
});

describe('simulate: epochs to detect', () => {
  // X: 20 and 30 appear at epoch 1, 30 closes at 3, 40 appears at 3. Y is first seen at 2 (no
  // appearances), then 60 appears at 3 and is never found.
  const observations = [
    { epoch: 0, ip: '198.18.0.1', tags: [], open: [10] },
    { epoch: 1, ip: '198.18.0.1', tags: [], open: [10, 20, 30] },
    { epoch: 2, ip: '198.18.0.1', tags: [], open: [10, 20, 30] },
    { epoch: 2, ip: '198.18.0.2', tags: [], open: [50] },
    { epoch: 3, ip: '198.18.0.1', tags: [], open: [10, 20, 40] },
    { epoch: 3, ip: '198.18.0.2', tags: [], open: [50, 60] },
    { epoch: 4, ip: '198.18.0.1', tags: [], open: [10, 20, 40] },
  ];
  const rec = makeRecording(observations, { probed: '1-100' });
  const script = {
    '0:198.18.0.1': [10],
    '1:198.18.0.1': [10, 20],
    '2:198.18.0.1': [10],
    '3:198.18.0.1': [10],
    '4:198.18.0.1': [40],
    '2:198.18.0.2': [50],
    '3:198.18.0.2': [50],
  };

  test('delays, censoring and the histogram match a hand count', () => {
    const { strategy } = scriptedStrategy(script);
    const r = simulate(rec, strategy, { seed: 's' });
    expect(r.epochsToDetect).toEqual({
      count: 4,
      detected: 2,
      censored: 2,
      vanished: 1,
      mean: 0.5,
      median: 0.5,
      histogram: { '0': 1, '1': 1, '2': 0, '3': 0, '>=4': 0 },
    });
  });

  test('per tag, a service counts under the tags its host had when it appeared', () => {
    // The same hosts, tagged: X is "web", and "web"+"new" from epoch 3 on (when 40 appears); Y is "db".
    const tags = (ip: string, epoch: number) => (ip === '198.18.0.2' ? ['db'] : epoch >= 3 ? ['new', 'web'] : ['web']);
    const tagged = makeRecording(
      observations.map((o) => ({ ...o, tags: tags(o.ip, o.epoch) })),
      { probed: '1-100' },
    );
    const r = simulate(tagged, scriptedStrategy(script).strategy, { seed: 's' });
    const hist = (h: Partial<Record<string, number>>) => ({ '0': 0, '1': 0, '2': 0, '3': 0, '>=4': 0, ...h });
    expect(r.perTag.web!.epochsToDetect).toEqual({
      count: 3,
      detected: 2,
      censored: 1,
      vanished: 1,
      mean: 0.5,
      median: 0.5,
      histogram: hist({ '0': 1, '1': 1 }),
    });
    expect(r.perTag.new!.epochsToDetect).toEqual({
      count: 1,
      detected: 1,
      censored: 0,
      vanished: 0,
      mean: 1,
      median: 1,
      histogram: hist({ '1': 1 }),
    });
    expect(r.perTag.db!.epochsToDetect).toEqual({
      count: 1,
      detected: 0,
      censored: 1,
      vanished: 0,
      mean: null,
      median: null,
      histogram: hist({}),
    });
    // Tags do not change the scope-wide count.
    expect(r.epochsToDetect).toEqual(simulate(rec, scriptedStrategy(script).strategy, { seed: 's' }).epochsToDetect);
  });

  test('previousOpen is what the strategy found on the host last time, not the truth', () => {
    const { strategy, seen } = scriptedStrategy(script);
    simulate(rec, strategy, { seed: 's' });
    const x = seen.filter((s) => s.ip === '198.18.0.1');
    expect(x.map((s) => [s.epoch, s.previousEpoch, s.previousOpen])).toEqual([
      [0, -1, []],
      [1, 0, [10]],
      [2, 1, [10, 20]],
      [3, 2, [10]],
      [4, 3, [10]],
    ]);
    expect(seen.find((s) => s.ip === '198.18.0.2')).toMatchObject({
      epoch: 2,
      previousEpoch: -1,
      previousOpen: [],
      prefix: '198.18.0.0/24',
    });
  });
});

describe('simulate: rollout detection', () => {
  const rollout = { port: 8000, subnet: '198.18.1.0/24', epoch: 1 };
  const obs: Observation[] = [];
  for (let e = 0; e < 4; e++) {
    for (const ip of ['198.18.1.1', '198.18.1.2', '198.18.1.3', '198.18.2.1']) {
      obs.push({ epoch: e, ip, tags: ['office'], open: e >= 1 ? [22, 8000] : [22] });
    }
  }
  const rec = makeRecording(obs, { probed: '1-65535', source: { profile: 'hand', rollout } });

  test('the share of rollout hosts whose port was found within 0, 1, 2 epochs', () => {
    const { strategy } = scriptedStrategy({
      '1:198.18.1.1': [8000],
      '2:198.18.1.2': [8000],
      '1:198.18.2.1': [8000],
      '*': [22],
    });
    const r = simulate(rec, strategy, { seed: 's' });
    expect(r.rollout).toEqual({ ...rollout, hosts: 3, within0: 1 / 3, within1: 2 / 3, within2: 2 / 3, never: 1, knownEpoch: 1 });
  });

  test('knownEpoch: the first epoch the port was found anywhere in the scope, before the rollout or not', () => {
    // Another subnet runs the port from epoch 0; found there in epoch 0, the rollout is at epoch 1.
    const early: Observation[] = [];
    for (let e = 0; e < 3; e++) {
      for (const ip of ['198.18.1.1', '198.18.1.2']) early.push({ epoch: e, ip, tags: ['office'], open: e >= 1 ? [22, 8000] : [22] });
      early.push({ epoch: e, ip: '198.18.2.1', tags: ['office'], open: [22, 8000] });
    }
    const known = makeRecording(early, { probed: '1-65535', source: { profile: 'hand', rollout } });
    const before = scriptedStrategy({ '0:198.18.2.1': [8000], '1:198.18.1.1': [8000], '*': [22] });
    expect(simulate(known, before.strategy, { seed: 's' }).rollout).toMatchObject({ knownEpoch: 0, within0: 1 / 2 });
    // Probed in the other subnet only from epoch 2: the port had to be discovered after the rollout.
    const late = scriptedStrategy({ '2:198.18.2.1': [8000], '2:198.18.1.2': [8000], '*': [22] });
    expect(simulate(known, late.strategy, { seed: 's' }).rollout).toMatchObject({ knownEpoch: 2, within0: 0, within1: 1 / 2 });
    // Never found: null.
    const never = scriptedStrategy({ '*': [22] });
    expect(simulate(known, never.strategy, { seed: 's' }).rollout).toMatchObject({ knownEpoch: null, never: 2 });
  });

  test('recordings without a rollout report null', () => {
    const { strategy } = scriptedStrategy({ '*': [22] });
    expect(simulate(twoEpochs, strategy, { seed: 's' }).rollout).toBeNull();
  });

  test('a malformed rollout is a recording error', () => {
    const bad = makeRecording(obs, { source: { rollout: { port: 0, subnet: 'x', epoch: 1 } } });
    const { strategy } = scriptedStrategy({});
    expect(() => simulate(bad, strategy, { seed: 's' })).toThrow(/source\.rollout.*expected \{port/);
  });
});

describe('simulate: batched feedback', () => {
  const obs: Observation[] = [];
  for (let e = 0; e < 2; e++) for (let h = 0; h < 10; h++) obs.push({ epoch: e, ip: `198.18.0.${h + 1}`, tags: [], open: [22] });
  const rec = makeRecording(obs);

  test('with a batch of 1 each decision sees every earlier result', () => {
    const { strategy, seen, observed } = scriptedStrategy({ '*': [22] });
    simulate(rec, strategy, { seed: 's', batch: 1, order: 'recording' });
    expect(seen.map((s) => s.observedBefore)).toEqual(Array.from({ length: 20 }, (_, i) => i));
    expect(observed.map((r) => `${r.epoch}:${r.ip}`)).toEqual(obs.map((o) => `${o.epoch}:${o.ip}`));
  });

  test('shuffled, each epoch visits its hosts once each, in a seeded order of its own', () => {
    const visits = (seed: string) => {
      const { strategy, seen, observed } = scriptedStrategy({ '*': [22] });
      const r = simulate(rec, strategy, { seed, batch: 1, order: 'shuffled' });
      expect(r.order).toBe('shuffled');
      // Results are learned in the order the hosts were decided.
      expect(observed.map((o) => o.ip)).toEqual(seen.map((s) => s.ip));
      return [seen.slice(0, 10).map((s) => s.ip), seen.slice(10).map((s) => s.ip)];
    };
    const [first, second] = visits('s');
    const ips = obs.slice(0, 10).map((o) => o.ip);
    expect([...first!].sort()).toEqual([...ips].sort());
    expect([...second!].sort()).toEqual([...ips].sort());
    expect(first).not.toEqual(ips);
    expect(second).not.toEqual(first);
    expect(visits('s')).toEqual([first, second]);
    expect(visits('t')).not.toEqual([first, second]);
  });

  test('an unknown order is refused, naming the option', () => {
    const { strategy } = scriptedStrategy({});
    expect(() => simulate(rec, strategy, { seed: 's', order: 'sorted' as 'recording' })).toThrow(
      /host order "recording" or "shuffled", got "sorted"/,
    );
  });

  test('with a batch of 4 results arrive 4 at a time, and the partial batch is delivered at the epoch end', () => {
    const { strategy, seen } = scriptedStrategy({ '*': [22] });
    simulate(rec, strategy, { seed: 's', batch: 4, order: 'recording' });
    expect(seen.map((s) => s.observedBefore)).toEqual([0, 0, 0, 0, 4, 4, 4, 4, 8, 8, 10, 10, 10, 10, 14, 14, 14, 14, 18, 18]);
  });

  test('with a large batch no decision of an epoch sees a result of the same epoch', () => {
    const { strategy, seen } = scriptedStrategy({ '*': [22] });
    simulate(rec, strategy, { seed: 's', batch: 1000 });
    expect(seen.map((s) => s.observedBefore)).toEqual([...Array<number>(10).fill(0), ...Array<number>(10).fill(10)]);
  });

  test('a batch size that is not a positive integer is refused', () => {
    const { strategy } = scriptedStrategy({});
    expect(() => simulate(rec, strategy, { seed: 's', batch: 0 })).toThrow(
      /batch: expected a batch size that is a positive integer, got 0/,
    );
  });
});

describe('simulate: determinism and progress', () => {
  const obs: Observation[] = [];
  for (let e = 0; e < 3; e++) {
    for (let h = 0; h < 40; h++)
      obs.push({
        epoch: e,
        ip: `198.18.${h % 3}.${h + 1}`,
        tags: [h % 2 ? 'a' : 'b'],
        open: [...new Set([1 + (h % 7), 3 + ((h * e) % 5)])].sort((x, y) => x - y),
      });
  }
  const rec = makeRecording(obs, { probed: '1-10' });
  const run = (seed: string) =>
    JSON.stringify(simulate(rec, createStrategy({ strategy: 'random', budget: 3 }, env), { seed, perHost: true, params: { z: 1, a: 2 } }));

  test('the same seed gives byte-identical JSON; another seed gives other choices', () => {
    expect(run('one')).toBe(run('one'));
    expect(run('one')).not.toBe(run('two'));
    expect(Object.keys(JSON.parse(run('one')).params)).toEqual(['a', 'z']);
  });

  test('progress is reported during and at the end of each epoch', () => {
    const calls: string[] = [];
    simulate(rec, createStrategy({ strategy: 'top-k', budget: 2 }, env), {
      seed: 's',
      progressEvery: 16,
      onProgress: (p) => calls.push(`${p.epoch}/${p.epochs}:${p.done}/${p.hosts}`),
    });
    expect(calls.slice(0, 4)).toEqual(['0/3:16/40', '0/3:32/40', '0/3:40/40', '1/3:16/40']);
    expect(calls).toHaveLength(9);
  });

  test('the probeable set reaches the strategy as the recording probed set', () => {
    const { strategy, seen } = scriptedStrategy({ '*': [1] });
    simulate(rec, strategy, { seed: 's' });
    expect(seen).toHaveLength(120);
    expect(new Set(seen.map((s) => s.probeable))).toEqual(new Set(['1-10']));
  });
});

describe('simulate: uneven allowances and follow-up rounds', () => {
  const rec = makeRecording(
    [
      { epoch: 0, ip: '198.18.0.1', tags: [], open: [5, 50, 99] },
      { epoch: 0, ip: '198.18.0.2', tags: [], open: [7] },
      { epoch: 0, ip: '198.18.0.3', tags: [], open: [1, 2] },
    ],
    { probed: '1-100' },
  );
  const options = resolveCommonOptions({ budget: 10 });
  // Sweeps .1 (capped at its 100 probeable ports), skips .2, and on .3 probes 1 then, having
  // found it, follows up with 2 and 3.
  const uneven: Strategy = {
    ...createStrategy({ strategy: 'top-k', budget: 10 }, env),
    name: 'uneven',
    allowance: (h) => (h.ip.endsWith('.1') ? 65535 : h.ip.endsWith('.2') ? 0 : 3),
    select(round) {
      const picker = new PortPicker(round, options);
      if (round.ip.endsWith('.1')) picker.addSweep();
      else picker.addAll(round.round === 0 ? [1] : round.found.includes(1) ? [2, 3] : []);
      return { ports: picker.ports, followUp: round.round === 0 };
    },
  };

  test('every probe is accounted, whatever the per-host split', () => {
    const r = simulate(rec, uneven, { seed: 's', perHost: true });
    expect(r.perHost!.probes).toEqual([100, 0, 3]);
    expect(r.perHost!.found).toEqual([3, 0, 2]);
    expect(r).toMatchObject({ total: 6, found: 5, probes: 103 });
    expect(r.probesPerHost).toBeCloseTo(103 / 3, 12);
  });
});
