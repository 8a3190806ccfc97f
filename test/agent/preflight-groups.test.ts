import { fc, test } from '@fast-check/vitest';
import { describe, expect } from 'vitest';
import { MASSCAN_UNION_FACTOR, groupForPreflight } from '../../agent/scan-batch.js';

const portList = fc
  .uniqueArray(fc.integer({ min: 1, max: 400 }), { minLength: 1, maxLength: 60 })
  .map((ports) => ports.sort((a, b) => a - b));
const waiting = fc.array(fc.record({ ports: portList, ran: fc.constantFrom('masscan' as const, 'connect' as const) }), {
  minLength: 1,
  maxLength: 40,
});

describe('preflight groups', () => {
  test.prop([waiting, fc.constantFrom(1, MASSCAN_UNION_FACTOR, 4)])(
    'every item lands in one group that probes its ports, and nobody gets more than factor x its own probes',
    (items, factor) => {
      const members = items.map((w, i) => ({ item: { ports: w.ports }, ran: w.ran, i }));
      const groups = groupForPreflight(members, factor);
      const seen = groups.flatMap((g) => g.members.map((m) => m.i)).sort((a, b) => a - b);
      expect(seen).toEqual(members.map((m) => m.i));
      for (const g of groups) {
        const set = new Set(g.ports);
        for (const m of g.members) {
          expect(m.ran).toBe(g.ran);
          for (const p of m.item.ports) expect(set.has(p)).toBe(true);
          if (g.ran === 'masscan') expect(g.ports.length).toBeLessThanOrEqual(factor * m.item.ports.length);
          else expect(g.ports).toEqual(m.item.ports); // the connect sweep probes each host's own list
        }
      }
    },
  );

  test('a full sweep never pulls a short list into its run, and identical lists share one', () => {
    const sweep = Array.from({ length: 65535 }, (_, i) => i + 1);
    const groups = groupForPreflight(
      [
        { item: { ports: sweep }, ran: 'masscan' as const },
        { item: { ports: sweep }, ran: 'masscan' as const },
        { item: { ports: [22, 80, 443] }, ran: 'masscan' as const },
      ],
      MASSCAN_UNION_FACTOR,
    );
    expect(groups.map((g) => [g.ports.length, g.members.length])).toEqual([
      [65535, 2],
      [3, 1],
    ]);
  });
});
