import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { LEASED_NAMED, describeLeased, groupLeased } from '../../agent/work-item.js';

const item = (ip: string, portRanges: string, round = 0) => ({ leaseId: `l-${ip}-${round}`, ip, portRanges, round });

describe("the agent's log line for a lease", () => {
  it('groups a first lease of a /24 by size and names a few addresses of each', () => {
    const items = Array.from({ length: 256 }, (_, i) => item(`198.18.1.${i}`, '1-1000'));
    const line = describeLeased(items);
    expect(line).toBe(
      `leased 256 work item(s): 256 x 1000 ports: ${Array.from({ length: LEASED_NAMED }, (_, i) => `"198.18.1.${i}"`).join(', ')} and 248 more`,
    );
    expect(line.length).toBeLessThan(200);
  });

  it('keeps rounds apart, in the order the groups first came', () => {
    const line = describeLeased([item('198.18.1.15', '1000-65535', 1), item('198.18.1.6', '1-1000'), item('198.18.1.9', '1000-65535', 1)]);
    expect(line).toBe('leased 3 work item(s): 2 x 64536 ports, round 1: "198.18.1.15", "198.18.1.9"; 1 x 1000 ports: "198.18.1.6"');
  });

  it('prints anything a coordinator sends without trusting its shape', () => {
    expect(describeLeased([null, 7, { ip: 'x'.repeat(500), portRanges: 'bogus', round: 'two' }, { ports: [1, 2] }])).toBe(
      `leased 4 work item(s): 3 x ? ports: undefined, undefined, ${JSON.stringify('x'.repeat(500)).slice(0, 80)}; 1 x 2 ports: undefined`,
    );
    fc.assert(
      fc.property(fc.array(fc.anything(), { maxLength: 300 }), (items) => {
        const groups = groupLeased(items);
        // Every item is in exactly one group; labels are distinct; each address is printed short.
        expect(groups.reduce((n, g) => n + g.ips.length, 0)).toBe(items.length);
        expect(new Set(groups.map((g) => g.label)).size).toBe(groups.length);
        for (const g of groups) for (const ip of g.ips) expect(ip.length).toBeLessThanOrEqual(80);
        const line = describeLeased(items);
        expect(line.startsWith(`leased ${items.length} work item(s): `)).toBe(true);
        // At most LEASED_NAMED addresses per group, whatever the lease's size.
        expect(line.length).toBeLessThanOrEqual(
          40 + groups.reduce((n, g) => n + g.label.length + 40 + Math.min(g.ips.length, LEASED_NAMED) * 82, 0),
        );
      }),
    );
  });
});
