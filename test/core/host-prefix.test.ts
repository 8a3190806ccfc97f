import { describe, expect, test } from 'vitest';
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
