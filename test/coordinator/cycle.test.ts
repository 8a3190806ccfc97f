import { describe, expect } from 'vitest';
import { test, fc } from '@fast-check/vitest';
import { formatAddress, parseAddress } from '../../src/coordinator/address.js';
import { AddressSpace, type ScopeItem } from '../../src/coordinator/address-space.js';
import { Cycle, type CycleDocument } from '../../src/coordinator/cycle.js';

const BASE4 = parseAddress('198.18.0.0').value;
const BASE6 = parseAddress('2001:db8::').value;

const item = (blocklist: boolean) =>
  fc
    .record({
      v6: fc.boolean(),
      start: fc.integer({ min: 0, max: 400 }),
      len: fc.integer({ min: 1, max: 120 }),
      tag: fc.constantFrom('a', 'b'),
    })
    .map(({ v6, start, len, tag }): ScopeItem => {
      const family = v6 ? 6 : 4;
      const s = (v6 ? BASE6 : BASE4) + BigInt(start);
      return { target: `${formatAddress(family, s)}-${formatAddress(family, s + BigInt(len - 1))}`, tags: [tag], blocklist };
    });

function drainCycle(cycle: Cycle, space: AddressSpace, items: readonly ScopeItem[], max: number): string[] {
  const out: string[] = [];
  const start = cycle.number;
  for (let i = 0; i < max; i++) {
    const a = cycle.next(space, items, 0);
    if (!a || a.cycle !== start) break;
    out.push(a.ip);
  }
  return out;
}

/** Everything one cycle hands out, restarting from the persisted document every `restartEvery` addresses. */
function drainWithRestarts(seed: string, items: readonly ScopeItem[], restartEvery: number): string[] {
  const space = AddressSpace.build(items);
  let cycle = Cycle.resume(seed, undefined, items, 0);
  const out: string[] = [];
  for (let i = 0; i < Number(space.size); i++) {
    if (i > 0 && i % restartEvery === 0) {
      const doc = JSON.parse(JSON.stringify(cycle.take())) as CycleDocument;
      cycle = Cycle.resume(seed, doc, items, 0);
    }
    const a = cycle.next(space, items, 0)!;
    expect(a.cycle).toBe(1);
    out.push(a.ip);
  }
  return out;
}

describe('the scan cycle', () => {
  test.prop([fc.array(item(false), { minLength: 1, maxLength: 5 }), fc.array(item(true), { maxLength: 3 }), fc.string({ maxLength: 8 })], {
    numRuns: 60,
  })('visits every address of scope minus blocklist exactly once per cycle (IPv4 and IPv6)', (scope, block, seed) => {
    const items = [...scope, ...block];
    const space = AddressSpace.build(items);
    const cycle = Cycle.resume(seed, undefined, items, 0);
    const got = drainCycle(cycle, space, items, Number(space.size));
    expect(got.length).toBe(Number(space.size));
    expect(new Set(got).size).toBe(got.length);
    for (const ip of got) {
      const { family, value } = parseAddress(ip);
      expect(space.find(family, value)).toBeDefined();
    }
    // Cycle 1 is exhausted: the next address already belongs to cycle 2.
    const next = cycle.next(space, items, 1);
    if (space.size > 0n) expect(next?.cycle).toBe(2);
  });

  test.prop(
    [fc.array(item(false), { minLength: 1, maxLength: 4 }), fc.array(item(true), { maxLength: 2 }), fc.integer({ min: 1, max: 50 })],
    { numRuns: 40 },
  )('resumes from its persisted position after a restart, in the same order', (scope, block, every) => {
    const items = [...scope, ...block];
    expect(drainWithRestarts('s', items, every)).toEqual(drainWithRestarts('s', items, 1_000_000));
  });

  test('a scope edit mid-cycle: removed addresses are skipped and counted, additions wait for the next cycle', () => {
    const before: ScopeItem[] = [{ target: '198.18.0.0/27', tags: ['x'], blocklist: false }];
    const after: ScopeItem[] = [
      ...before,
      { target: '198.18.0.8/29', tags: [], blocklist: true },
      { target: '198.18.1.0/30', tags: ['new'], blocklist: false },
    ];
    const cycle = Cycle.resume('edit', undefined, before, 0);
    const first = drainCycle(cycle, AddressSpace.build(before), before, 10);
    const afterSpace = AddressSpace.build(after);
    const rest: string[] = [];
    while (cycle.progress().position !== cycle.progress().size) {
      const a = cycle.next(afterSpace, after, 0);
      if (a) rest.push(a.ip);
    }
    const all = [...first, ...rest];
    expect(new Set(all).size).toBe(all.length);
    const firstSet = new Set(first);
    for (let i = 0; i < 32; i++) {
      const ip = `198.18.0.${i}`;
      const blocked = i >= 8 && i < 16;
      // Every original address is visited once, except blocklisted ones not yet visited before the edit.
      expect(all.includes(ip)).toBe(!blocked || firstSet.has(ip));
    }
    expect(all.some((ip) => ip.startsWith('198.18.1.'))).toBe(false);
    const progress = cycle.progress();
    expect(progress.dispensed + progress.skipped).toBe(32);
    expect(progress.skipped).toBe(8 - first.filter((ip) => Number(ip.split('.')[3]) >= 8 && Number(ip.split('.')[3]) < 16).length);
    // Cycle 2 walks the edited scope, including the added range.
    const c2: string[] = [];
    for (let i = 0; i < 28; i++) {
      const a = cycle.next(afterSpace, after, 0)!;
      expect(a.cycle).toBe(2);
      c2.push(a.ip);
    }
    expect(new Set(c2).size).toBe(28);
    expect(c2.filter((ip) => ip.startsWith('198.18.1.')).length).toBe(4);
  });

  test('a /8-sized scope (pure math, never scanned) hands out distinct in-scope addresses without materialising it', () => {
    const items: ScopeItem[] = [
      { target: '198.0.0.0/8', tags: ['big'], blocklist: false },
      { target: '198.18.0.0/15', tags: [], blocklist: true },
    ];
    const space = AddressSpace.build(items);
    expect(space.size).toBe((1n << 24n) - (1n << 17n));
    const cycle = Cycle.resume('slash8', undefined, items, 0);
    const seen = new Set<string>();
    for (let i = 0; i < 20_000; i++) {
      const a = cycle.next(space, items, 0)!;
      expect(a.ip.startsWith('198.')).toBe(true);
      expect(a.ip.startsWith('198.18.') || a.ip.startsWith('198.19.')).toBe(false);
      seen.add(a.ip);
    }
    expect(seen.size).toBe(20_000);
    expect(cycle.progress().position).toBe('20000');
  });

  test('an IPv6 /64 cycle works with bigint positions', () => {
    const items: ScopeItem[] = [{ target: '2001:db8::/64', tags: ['v6'], blocklist: false }];
    const space = AddressSpace.build(items);
    const cycle = Cycle.resume('v6', undefined, items, 0);
    const seen = new Set<string>();
    for (let i = 0; i < 2000; i++) seen.add(cycle.next(space, items, 0)!.ip);
    expect(seen.size).toBe(2000);
    for (const ip of seen) expect(ip.startsWith('2001:db8::')).toBe(true);
    expect(cycle.progress().size).toBe(String(1n << 64n));
  });
});

describe('restarting a cycle', () => {
  test.prop([fc.array(item(false), { minLength: 1, maxLength: 4 }), fc.nat(50)])(
    'counts a fully walked cycle as completed, and an unfinished one as abandoned',
    (items, stopAt) => {
      const space = AddressSpace.build(items);
      const walked = Cycle.resume('restart', undefined, items, 0);
      drainCycle(walked, space, items, Number(space.size));
      walked.restart(items, 1000);
      expect(walked.progress()).toMatchObject({ cycle: 2, completed: 1 });

      const unfinished = Cycle.resume('restart', undefined, items, 0);
      const taken = Math.min(stopAt, Number(space.size) - 1);
      drainCycle(unfinished, space, items, taken);
      unfinished.restart(items, 1000);
      expect(unfinished.progress()).toMatchObject({ cycle: 2, completed: 0 });
    },
  );
});
