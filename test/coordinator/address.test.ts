import { describe, expect } from 'vitest';
import { test, fc } from '@fast-check/vitest';
import { formatAddress, formatRange, parseAddress, parseTargetSpec, rangeToCidrs } from '../../src/coordinator/address.js';
import { AddressSpace, type ScopeItem } from '../../src/coordinator/address-space.js';
import { Permutation } from '../../src/coordinator/permutation.js';
import { formatScopeFile, parseScopeFile } from '../../src/coordinator/scope-file.js';

const BASE4 = parseAddress('198.18.0.0').value; // 198.18.0.0/15: 131,072 addresses
const BASE6 = parseAddress('2001:db8::').value;

describe('addresses', () => {
  test('parses CIDRs, ranges and single addresses, clearing host bits', () => {
    expect(formatRange(parseTargetSpec('198.18.3.7/24'))).toBe('198.18.3.0/24');
    expect(formatRange(parseTargetSpec('198.18.0.10-198.18.0.20'))).toBe('198.18.0.10-198.18.0.20');
    expect(formatRange(parseTargetSpec('198.18.0.0-198.18.0.255'))).toBe('198.18.0.0/24');
    expect(formatRange(parseTargetSpec('2001:db8::1'))).toBe('2001:db8::1');
    expect(formatRange(parseTargetSpec('2001:DB8::/32'))).toBe('2001:db8::/32');
    expect(rangeToCidrs(parseTargetSpec('198.18.0.1-198.18.0.6'))).toEqual([
      '198.18.0.1/32',
      '198.18.0.2/31',
      '198.18.0.4/31',
      '198.18.0.6/32',
    ]);
  });

  test('rejects malformed specs with the input named', () => {
    expect(() => parseTargetSpec('198.18.0.0/33', 'scope.txt:3')).toThrow(/scope.txt:3: expected a CIDR block/);
    expect(() => parseTargetSpec('10', 'x')).toThrow(/expected an IPv4 or IPv6 address, got "10"/);
    expect(() => parseTargetSpec('198.18.0.9-198.18.0.1', 'x')).toThrow(/first <= last/);
    expect(() => parseTargetSpec('198.18.0.1-2001:db8::1', 'x')).toThrow(/one family/);
  });

  test.prop([fc.bigInt({ min: 0n, max: (1n << 128n) - 1n })])('IPv6 text round-trips (an IPv4-mapped value is its IPv4 address)', (v) => {
    const mapped = v >> 32n === 0xffffn;
    expect(parseAddress(formatAddress(6, v))).toEqual(mapped ? { family: 4, value: v & 0xffffffffn } : { family: 6, value: v });
  });

  test('reads and writes the Natlas ip_or_cidr,tag1,tag2 format', () => {
    const lines = parseScopeFile('# comment\n198.18.0.0/24,dmz,web\n\n198.18.1.5\n2001:db8::/64,v6\n', 'scope.txt');
    expect(lines).toEqual([
      { range: '198.18.0.0/24', tags: ['dmz', 'web'] },
      { range: '198.18.1.5', tags: [] },
      { range: '2001:db8::/64', tags: ['v6'] },
    ]);
    expect(formatScopeFile(lines)).toBe('198.18.0.0/24,dmz,web\n198.18.1.5\n2001:db8::/64,v6\n');
    expect(() => parseScopeFile('198.18.0.0/24,ok\nnot-an-ip,x\n', 'scope.txt')).toThrow(/scope.txt:2/);
  });
});

/** Random scope items inside 198.18.0.0/15 (offsets small so ranges overlap) and 2001:db8::/32. */
const item = (blocklist: boolean) =>
  fc
    .record({
      v6: fc.boolean(),
      start: fc.integer({ min: 0, max: 600 }),
      len: fc.integer({ min: 1, max: 200 }),
      tag: fc.constantFrom('a', 'b', 'c'),
    })
    .map(({ v6, start, len, tag }): ScopeItem => {
      const family = v6 ? 6 : 4;
      const base = v6 ? BASE6 : BASE4;
      const s = base + BigInt(start);
      const e = s + BigInt(len - 1);
      return { target: `${formatAddress(family, s)}-${formatAddress(family, e)}`, tags: [tag], blocklist };
    });

function membersNaive(items: readonly ScopeItem[]): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  for (const it of items.filter((i) => !i.blocklist)) {
    const r = parseTargetSpec(it.target);
    for (let v = r.start; v <= r.end; v++) {
      const key = `${r.family}:${v}`;
      const tags = out.get(key) ?? new Set<string>();
      it.tags.forEach((t) => tags.add(t));
      out.set(key, tags);
    }
  }
  for (const it of items.filter((i) => i.blocklist)) {
    const r = parseTargetSpec(it.target);
    for (let v = r.start; v <= r.end; v++) out.delete(`${r.family}:${v}`);
  }
  return out;
}

describe('address space', () => {
  test.prop([fc.array(item(false), { minLength: 0, maxLength: 6 }), fc.array(item(true), { maxLength: 4 })])(
    'holds exactly scope minus blocklist, with the union of tags, in order',
    (scope, block) => {
      const items = [...scope, ...block];
      const space = AddressSpace.build(items);
      const expected = membersNaive(items);
      expect(space.size).toBe(BigInt(expected.size));
      // What is wrong with each member, asserted once: an expect per address cost more than the walk.
      const wrong: string[] = [];
      let prev: string | undefined;
      for (let i = 0n; i < space.size; i++) {
        const a = space.nth(i);
        const key = `${a.family}:${a.value}`;
        const tags = [...(expected.get(key) ?? [])].sort();
        if (!expected.has(key)) wrong.push(`${key}: not in scope minus blocklist`);
        else if (a.tags.length !== tags.length || a.tags.some((t, j) => t !== tags[j]))
          wrong.push(`${key}: tags [${a.tags}], expected [${tags}]`);
        if (space.find(a.family, a.value) === undefined) wrong.push(`${key}: not found by find`);
        if (prev !== undefined && !(prev < key || a.family === 6)) wrong.push(`${key}: after ${prev}`);
        prev = key;
      }
      expect(wrong).toEqual([]);
    },
  );
});

describe('permutation', () => {
  test.prop([fc.integer({ min: 0, max: 1500 }), fc.string()])('is a bijection of [0, n)', (n, key) => {
    const p = new Permutation(BigInt(n), key);
    const seen = new Set<bigint>();
    const outside: bigint[] = [];
    for (let i = 0n; i < BigInt(n); i++) {
      const v = p.at(i);
      if (!(v >= 0n && v < BigInt(n))) outside.push(v);
      seen.add(v);
    }
    expect(outside).toEqual([]);
    expect(seen.size).toBe(n);
  });

  test.prop([fc.bigInt({ min: 1n, max: 1n << 100n }), fc.array(fc.bigInt({ min: 0n, max: 1n << 100n }), { minLength: 2, maxLength: 20 })])(
    'maps distinct indices to distinct values in range for huge (IPv6-sized) domains',
    (n, raw) => {
      const p = new Permutation(n, 'k');
      const idx = [...new Set(raw.map((x) => x % n))];
      const img = idx.map((i) => p.at(i));
      expect(img.filter((v) => !(v >= 0n && v < n))).toEqual([]);
      expect(new Set(img).size).toBe(idx.length);
    },
  );

  test('a /8-sized walk (pure math, never scanned) is injective and in range on a sample', () => {
    const n = 1n << 24n;
    const p = new Permutation(n, 'slash8');
    const seen = new Set<bigint>();
    // 50k consecutive indices: any collision would show up as a repeat.
    for (let i = 0n; i < 50_000n; i++) seen.add(p.at(i));
    expect(seen.size).toBe(50_000);
    expect([...seen].filter((v) => !(v < n))).toEqual([]);
    // The order looks shuffled: consecutive images are not consecutive numbers.
    const first = [...seen].slice(0, 1000);
    const adjacent = first.filter((v, i) => i > 0 && v === first[i - 1]! + 1n).length;
    expect(adjacent).toBeLessThan(5);
  });
});
