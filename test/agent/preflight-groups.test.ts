import { fc, test } from '@fast-check/vitest';
import { describe, expect } from 'vitest';
import { MASSCAN_UNION_FACTOR, SILENT_WAVE_SECONDS, groupForPreflight, pickWave } from '../../agent/scan-batch.js';

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

  const queue = fc.array(fc.record({ silent: fc.boolean(), seconds: fc.double({ min: 0, max: 40, noNaN: true }) }), { maxLength: 60 });

  test.prop([queue, fc.integer({ min: 0, max: 900_000 })])(
    'a wave holds every answering item (and silent ones past half their lease) when any; else silent items in order, within the cap or one',
    (entries, now) => {
      type Item = { issuedAt: number; deadline: number; silent?: true };
      // Half of the silent rounds were leased 400 s before the others.
      const waiting = entries.map((e, i) => {
        const issuedAt = i % 2 === 0 ? 0 : 400_000;
        const item: Item = { issuedAt, deadline: issuedAt + 900_000, ...(e.silent ? { silent: true as const } : {}) };
        return { item, seconds: e.seconds, i };
      });
      const due = (m: (typeof waiting)[number]) => m.item.silent !== true || now >= m.item.issuedAt + 450_000;
      const { wave, rest } = pickWave(waiting, (m) => m.seconds, now);
      // Nothing lost, nothing twice, and what waits keeps its order.
      expect([...wave, ...rest].map((m) => m.i).sort((a, b) => a - b)).toEqual(waiting.map((m) => m.i));
      expect(rest.map((m) => m.i)).toEqual([...rest.map((m) => m.i)].sort((a, b) => a - b));
      const answering = waiting.filter(due);
      if (answering.length > 0) {
        expect(wave).toEqual(answering);
        expect(rest.every((m) => !due(m))).toBe(true);
        return;
      }
      if (waiting.length === 0) {
        expect(wave).toEqual([]);
        return;
      }
      // The head of the queue, as long as the cap allows (the first one always goes).
      expect(wave).toEqual(waiting.slice(0, wave.length));
      expect(wave.length).toBeGreaterThan(0);
      const total = wave.reduce((n, m) => n + m.seconds, 0);
      if (wave.length > 1) expect(total).toBeLessThanOrEqual(SILENT_WAVE_SECONDS);
      if (rest.length > 0) expect(total + rest[0]!.seconds).toBeGreaterThan(SILENT_WAVE_SECONDS);
    },
  );

  test('a sparse /24: 170 silent full sweeps at 50,000 packets/s leave after 30 s waves, not as one run', () => {
    const sweep = (65535 * 2) / 50_000; // ~2.6 s each with one retry
    type Item = { issuedAt: number; deadline: number; silent?: true };
    const waiting = Array.from({ length: 170 }, (_, i) => ({ item: { issuedAt: 0, deadline: 900_000, silent: true } as Item, i }));
    const { wave, rest } = pickWave(waiting, () => sweep, 1000);
    expect(wave.length).toBe(Math.floor(SILENT_WAVE_SECONDS / sweep));
    expect(rest.length).toBe(170 - wave.length);
    // A live host's next round arrives: it goes alone in the next wave.
    const next = pickWave([...rest, { item: { issuedAt: 60_000, deadline: 960_000 }, i: 999 }], () => sweep, 61_000);
    expect(next.wave.map((m) => m.i)).toEqual([999]);
    expect(next.rest).toEqual(rest);
    // Half their lease later, the silent rounds still waiting go with it, whatever their sending time.
    const late = pickWave([...rest, { item: { issuedAt: 440_000, deadline: 1_340_000 }, i: 1000 }], () => sweep, 450_000);
    expect(late.wave.map((m) => m.i)).toEqual([...rest.map((m) => m.i), 1000]);
    expect(late.rest).toEqual([]);
  });
});
