import { describe, expect } from 'vitest';
import { fc, test } from '@fast-check/vitest';
import { PortRanges, isPort, normalizePorts } from '../../src/core/ports.js';
import { isPortbanditError } from '../../src/core/errors.js';

const port = fc.integer({ min: 1, max: 65535 });

describe('PortRanges', () => {
  test.prop([fc.array(port, { maxLength: 200 })])('fromPorts holds exactly the given ports', (ports) => {
    const ranges = PortRanges.fromPorts(ports);
    const expected = [...new Set(ports)].sort((a, b) => a - b);
    expect(ranges.toArray()).toEqual(expected);
    expect(ranges.size).toBe(expected.length);
    for (const p of ports) expect(ranges.has(p)).toBe(true);
  });

  // Lists that ascend for a while (a sweep, a work item's ports: the one-pass path), with runs of
  // adjacent ports and repeats, and sometimes a port out of order after them (the sorted path).
  test.prop([fc.array(fc.integer({ min: 1, max: 40 }), { maxLength: 60 }), fc.integer({ min: 0, max: 2 }), fc.option(port)])(
    'fromPorts of a list that ascends, then may fall back, holds exactly its ports',
    (starts, gap, tail) => {
      const ports: number[] = [];
      let p = 0;
      for (const step of starts) {
        p = Math.min(65535, p + (step % 3 === 0 ? gap : step));
        if (p >= 1) ports.push(p);
      }
      if (tail !== null) ports.push(tail);
      const expected = [...new Set(ports)].sort((a, b) => a - b);
      const ranges = PortRanges.fromPorts(ports);
      expect(ranges.toArray()).toEqual(expected);
      expect(ranges.size).toBe(expected.length);
      expect(PortRanges.parse(ranges.toString() || '1').size).toBe(expected.length || 1);
    },
  );

  test('fromPorts checks every port, past an ascending start too', () => {
    for (const bad of [
      [1, 2, 3, 0],
      [1, 2, 70000],
      [5, 4, 3.5],
      [1, 2, Number.NaN],
    ]) {
      let error: unknown;
      try {
        PortRanges.fromPorts(bad, 'ports');
      } catch (e) {
        error = e;
      }
      expect(isPortbanditError(error) && error.code).toBe('PB_ERR_PORT_SPEC');
    }
    expect(PortRanges.fromPorts([1, 2, 3, 5, 5, 6, 65535]).toString()).toBe('1-3,5-6,65535');
    expect(PortRanges.fromPorts([7, 8, 9, 1]).toString()).toBe('1,7-9');
  });

  test.prop([fc.array(port, { maxLength: 200 }), port])('has() agrees with set membership', (ports, probe) => {
    expect(PortRanges.fromPorts(ports).has(probe)).toBe(ports.includes(probe));
  });

  test.prop([fc.array(fc.tuple(port, port), { maxLength: 30 })])('parse(toString()) round-trips', (pairs) => {
    const ranges = PortRanges.fromPairs(pairs.flatMap(([a, b]) => [Math.min(a, b), Math.max(a, b)]));
    if (ranges.size === 0) return;
    expect(PortRanges.parse(ranges.toString()).equals(ranges)).toBe(true);
  });

  test.prop([fc.array(port, { minLength: 1, maxLength: 100 })])('nth() enumerates in ascending order', (ports) => {
    const ranges = PortRanges.fromPorts(ports);
    const all = ranges.toArray();
    all.forEach((p, i) => expect(ranges.nth(i)).toBe(p));
    expect(ranges.nth(all.length)).toBe(-1);
  });

  test('parses nmap-style specifications', () => {
    expect(PortRanges.parse('1-65535').isAll).toBe(true);
    expect(PortRanges.parse('22, 80,443,8000-8002').toArray()).toEqual([22, 80, 443, 8000, 8001, 8002]);
    expect(PortRanges.parse('-3').toArray()).toEqual([1, 2, 3]);
    expect(PortRanges.parse('65534-').toArray()).toEqual([65534, 65535]);
    expect(PortRanges.parse([22, '80-81']).toArray()).toEqual([22, 80, 81]);
  });

  test.each(['', '0', '65536', '10-5', 'ssh', '1-2-3', '22,,80'])('rejects %j with a coded error naming where', (spec) => {
    let error: unknown;
    try {
      PortRanges.parse(spec, 'probed');
    } catch (e) {
      error = e;
    }
    expect(isPortbanditError(error, 'PB_ERR_PORT_SPEC')).toBe(true);
    expect((error as Error).message).toMatch(/^probed: /);
  });
});

describe('ports', () => {
  test('isPort accepts only integers 1-65535', () => {
    expect([1, 65535, 443].every(isPort)).toBe(true);
    expect([0, 65536, 1.5, NaN, '22'].some(isPort)).toBe(false);
  });

  test('normalizePorts sorts, de-duplicates and names the bad input', () => {
    expect(normalizePorts([443, 22, 443])).toEqual([22, 443]);
    expect(() => normalizePorts([22, 70000], 'mustHave')).toThrow(/mustHave: expected ports 1-65535, got 70000/);
  });
});
