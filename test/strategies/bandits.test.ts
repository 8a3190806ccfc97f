import { describe, expect, test } from 'vitest';
import { loadNmapServices } from '../../src/catalog/index.js';
import { HostSession } from '../../strategies/host-session.js';
import { createStrategy } from '../../strategies/build.js';
import type { HostContext, HostResult, Strategy } from '../../strategies/types.js';
import { hostContext } from '../helpers/host-context.js';

const env = { catalog: loadNmapServices() };
const LEARNERS = ['epsilon-greedy', 'ucb', 'thompson', 'lin-ucb'] as const;
const range = (a: number, n: number) => Array.from({ length: n }, (_, i) => a + i);

function result(i: number, over: Partial<HostResult> & Pick<HostResult, 'probed' | 'open'>): HostResult {
  return { ip: `198.18.1.${i}`, tags: ['web'], prefix: '198.18.1.0/24', epoch: 1, previousOpen: [], sweep: false, ...over };
}

function host(over: Partial<HostContext> = {}): HostContext {
  return hostContext({ ip: '198.18.9.9', tags: ['web'], epoch: 3, ...over });
}

function firstDecision(strategy: Strategy, h: HostContext, seed = 's'): number[] {
  return new HostSession(strategy, h, seed).next() ?? [];
}

describe.each(LEARNERS)('%s guard rails and learning', (name) => {
  test("explain's budget split shows the history it re-verifies, measured over the results learned, and keeps it across a restore", () => {
    const s = createStrategy({ strategy: name, budget: 100 }, env);
    expect(s.explain(5).split.history).toBe(0);
    // Ten hosts re-verified two old ports each (one of them still open), ten had none.
    s.observe([
      ...range(1, 10).map((i) => result(i, { epoch: 1, previousOpen: [22, 8443], probed: [22, 80, 8443], open: [22] })),
      ...range(11, 10).map((i) => result(i, { epoch: 1, probed: [22, 80], open: [80] })),
    ]);
    const split = s.explain(5).split;
    expect(split.history).toBe(1);
    expect(split.mustHave + split.fixed + split.history + split.learned + split.exploration).toBeCloseTo(100, 5);
    const restored = createStrategy({ strategy: name, budget: 100 }, env, JSON.parse(JSON.stringify(s.state())));
    expect(restored.explain(5).split).toEqual(split);
  });

  test('a lossy batch is flagged and changes nothing learned', () => {
    const s = createStrategy({ strategy: name, budget: 20 }, env);
    s.observe(range(1, 10).map((i) => result(i, { epoch: 0, probed: [22, 80, 8443], open: [22, 8443] })));
    const before = JSON.stringify(s.state());
    const lost = range(1, 10).map((i) => result(i, { epoch: 1, previousOpen: [22, 8443], probed: [22, 80, 8443], open: [] }));
    expect(s.observe(lost)).toEqual({ learned: 0, pseudo: 0, lossy: true });
    expect(JSON.stringify(s.state())).toBe(before);
  });

  test('a pseudo-service host does not teach', () => {
    const s = createStrategy({ strategy: name, budget: 100 }, env);
    const before = JSON.stringify(s.state());
    expect(s.observe([result(1, { probed: range(1000, 100), open: range(1000, 100) })])).toEqual({ learned: 0, pseudo: 1, lossy: false });
    expect(JSON.stringify(s.state())).toBe(before);
  });

  test('a service open across the scope is learned and probed, also for a tag with no data', () => {
    const s = createStrategy({ strategy: name, budget: 20 }, env);
    for (let e = 0; e < 3; e++) s.observe(range(1, 40).map((i) => result(i, { epoch: e, probed: [80, 443, 31337], open: [31337] })));
    const picked = [0, 1, 2, 3, 4].filter((k) => firstDecision(s, host({ tags: ['brand-new'], ip: `198.18.9.${k + 1}` })).includes(31337));
    expect(picked.length).toBeGreaterThanOrEqual(4);
    const explained = s.explain(3);
    expect(explained.groups[0]!.top.map((t) => t.port)).toContain(31337);
  });
});

describe('lin-ucb features', () => {
  test('a port that persists on the hosts that had it is re-probed on such a host, not on others', () => {
    const s = createStrategy({ strategy: 'lin-ucb', budget: 5, params: { exploration: 0 } }, env);
    for (let e = 0; e < 3; e++) {
      const withIt = range(1, 10).map((i) => result(i, { epoch: e, previousOpen: [40000], probed: [22, 80, 443, 40000], open: [40000] }));
      const without = range(11, 400).map((i) => result(i, { epoch: e, probed: [22, 80, 443, 40000], open: [80] }));
      s.observe([...withIt, ...without]);
    }
    expect(firstDecision(s, host({ previousOpen: [40000], previousEpoch: 2 }))).toContain(40000);
    expect(firstDecision(s, host())).not.toContain(40000);
  });
});

describe('ucb: hosts decided on the same statistics', () => {
  // Discovery off and a tag with evidence, so what differs between hosts is the ranking alone.
  const decideBatch = (exploration: number) => {
    const s = createStrategy({ strategy: 'ucb', budget: 20, params: { exploration, discoveryShare: 0, sweepShare: 0 } }, env);
    s.observe(range(1, 40).map((i) => result(i, { epoch: 0, probed: [22, 80, 443], open: [80] })));
    return range(1, 60).map((k) => firstDecision(s, host({ ip: `198.18.9.${k}`, epoch: 1 })));
  };

  test("share its optimism: an uncertain port's bonus pays for some of the batch's probes, not every host's", () => {
    const batch = decideBatch(1);
    // Every host probes the port known to be open.
    expect(batch.every((ports) => ports.includes(80))).toBe(true);
    // The batch spreads over more than twice the candidates one host probes (the old ranking,
    // fixed per statistics version, gave all 60 hosts the same 20 ports).
    expect(new Set(batch.flat()).size).toBeGreaterThan(2 * batch[0]!.length);
    expect(batch.some((ports) => ports.some((p) => !batch[0]!.includes(p)))).toBe(true);
  });

  test('without a bonus every host of the batch gets the same ports (pending probes change only the bonus)', () => {
    const batch = decideBatch(0);
    for (const ports of batch) expect([...ports].sort((a, b) => a - b)).toEqual([...batch[0]!].sort((a, b) => a - b));
  });
});
