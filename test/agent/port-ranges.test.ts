import { fc, test as propTest } from '@fast-check/vitest';
import { describe, expect, test } from 'vitest';
import { AllowList, canonicalPortRanges, checkWorkItem, portCountOf } from '../../agent/index.js';
import { PortRanges } from '../../src/core/index.js';
import type { WorkItem } from '../../src/protocol/index.js';

const lab = AllowList.parse(['198.18.0.0/15']);

function item(ports: readonly number[], portRanges?: string): Record<string, unknown> {
  return {
    protocol: 1,
    leaseId: 'lease_x',
    ip: '198.18.1.7',
    tags: [],
    ports,
    ...(portRanges !== undefined ? { portRanges } : {}),
    round: 0,
    cycle: 1,
    reason: 'cycle',
    issuedAt: 0,
    deadline: 60_000,
    scan: { versionDetection: true, scripts: [], hostTimeoutSeconds: 30, scriptTimeoutSeconds: 10, preflight: 'connect' },
  };
}

/** Port lists as a coordinator might send them, good or bad: runs, repeats, any order, out of range. */
const anyPorts = fc.oneof(
  fc.array(fc.tuple(fc.integer({ min: 1, max: 65535 }), fc.integer({ min: 0, max: 500 })), { minLength: 1, maxLength: 8 }).map((runs) => {
    const set = new Set<number>();
    for (const [s, n] of runs) for (let p = s; p <= Math.min(65535, s + n); p++) set.add(p);
    return [...set].sort((a, b) => a - b);
  }),
  fc.array(fc.integer({ min: -2, max: 65537 }), { maxLength: 12 }),
);

describe('work items whose ports come as a range spec (portRanges)', () => {
  propTest.prop([anyPorts])('are accepted or refused exactly as the same ports listed, and scanned as the same list', (ports) => {
    const listed = checkWorkItem(item(ports), lab);
    // The spec a coordinator would send for these ports (none when they are not a valid set).
    let spec: string | undefined;
    try {
      spec = ports.length > 0 ? PortRanges.fromPorts(ports).toString() : undefined;
    } catch {
      spec = undefined;
    }
    if (spec === undefined) {
      expect('item' in listed).toBe(false);
      return;
    }
    const ranged = checkWorkItem(item([], spec), lab);
    const distinctAscending = ports.every((p, i) => i === 0 || p > ports[i - 1]!);
    if (distinctAscending) {
      expect(ranged).toEqual(listed);
      expect('item' in ranged && ranged.item.ports).toEqual(ports);
      expect(portCountOf(item([], spec))).toBe(ports.length);
    } else {
      // The list form refuses repeats and disorder; a spec cannot express them.
      expect('item' in listed).toBe(false);
      expect('item' in ranged && ranged.item.ports).toEqual(PortRanges.fromPorts(ports).toArray());
    }
  });

  propTest.prop([fc.stringMatching(/^[0-9,-]{1,24}$/)])('read only in canonical form (what a coordinator writes)', (text) => {
    const checked = checkWorkItem(item([], text), lab);
    let canonical = false;
    try {
      canonical = PortRanges.parse(text).toString() === text;
    } catch {
      canonical = false;
    }
    expect('item' in checked).toBe(canonical);
    expect(canonicalPortRanges(text) !== undefined).toBe(canonical);
    if (!canonical && !/^[0-9]/.test(text)) expect('reason' in checked && checked.reason).toContain('portRanges');
  });

  test('refuse an item with both forms, and name what is wrong', () => {
    const both = checkWorkItem(item([22], '22'), lab);
    expect('reason' in both && both.reason).toContain('ports and portRanges are both given');
    const spaced = checkWorkItem(item([], '22,80-79'), lab);
    expect('reason' in spaced && spaced.reason).toContain('not a canonical port range spec');
    const whole = checkWorkItem(item([], '1-65535'), lab);
    expect('item' in whole && (whole.item as WorkItem).ports).toHaveLength(65535);
    expect('item' in whole && 'portRanges' in whole.item).toBe(false);
  });
});
