import { fc, test } from '@fast-check/vitest';
import { describe, expect } from 'vitest';
import { PortRanges } from '../../src/core/ports.js';
import { rangesOfSorted } from '../../src/coordinator/coordinator.js';

describe("rangesOfSorted (a submit's probed ports)", () => {
  test.prop([fc.array(fc.integer({ min: 1, max: 200 }), { maxLength: 120 })])(
    'is PortRanges.fromPorts(...).toString() of a sorted list, duplicates included',
    (ports) => {
      const sorted = [...ports].sort((a, b) => a - b);
      expect(rangesOfSorted(sorted)).toBe(PortRanges.fromPorts(sorted).toString());
    },
  );
});
