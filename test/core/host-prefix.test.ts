import { describe, expect, test } from 'vitest';
import { fc, test as fcTest } from '@fast-check/vitest';
import { contextPrefix, parseAddress } from '../../src/coordinator/address.js';
import { createCidrMatcher, hostPrefix } from '../../simulator/index.js';

describe('hostPrefix', () => {
  test('is the /24 of an IPv4 address and the /64 of an IPv6 address', () => {
    expect(hostPrefix('198.18.3.77')).toBe('198.18.3.0/24');
    expect(hostPrefix('2001:db8:1:2:3:4:5:6')).toBe('2001:db8:1:2::/64');
    expect(hostPrefix('2001:db8::1')).toBe('2001:db8::/64');
    expect(hostPrefix('::ffff:198.18.0.9')).toBe('198.18.0.0/24');
  });

  test('names a malformed address', () => {
    expect(() => hostPrefix('not-an-ip')).toThrow(/ip: expected an IPv4 or IPv6 address, got "not-an-ip"/);
  });
});

describe('createCidrMatcher', () => {
  test('matches addresses of the same family inside the range only', () => {
    const inside = createCidrMatcher('198.18.4.0/24', 'subnet');
    expect(inside('198.18.4.200')).toBe(true);
    expect(inside('198.18.5.1')).toBe(false);
    expect(inside('2001:db8::1')).toBe(false);
    expect(() => createCidrMatcher('198.18.4.0/33', 'rollout.subnet')).toThrow(/rollout\.subnet: expected a CIDR/);
  });
});

describe('one context prefix for the coordinator and the simulator', () => {
  // Addresses only from 198.18.0.0/15 and the IPv6 documentation prefix 2001:db8::/32.
  const v4 = fc.tuple(fc.integer({ min: 18, max: 19 }), fc.nat(255), fc.nat(255)).map(([b, c, d]) => `198.${b}.${c}.${d}`);
  const v6 = fc.array(fc.nat(0xffff), { minLength: 6, maxLength: 6 }).map((g) => `2001:db8:${g.map((x) => x.toString(16)).join(':')}`);
  fcTest.prop([v4, v6])('the coordinator derives the same prefix string as hostPrefix', (a, b) => {
    for (const ip of [a, b]) {
      const { family, value } = parseAddress(ip);
      expect(contextPrefix(family, value)).toBe(hostPrefix(ip));
    }
  });
});
