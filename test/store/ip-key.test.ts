import { fc, test } from '@fast-check/vitest';
import ipaddr from 'ipaddr.js';
import { describe, expect } from 'vitest';
import { canonicalIp, ipKey } from '../../src/store/ip-key.js';

/** What ipaddr.js alone gives (the reference the dotted-quad fast path must agree with). */
function reference(ip: string): { text: string; key: string } | 'error' {
  try {
    const address = ipaddr.process(ip);
    const v6 = address.kind() === 'ipv4' ? (address as ipaddr.IPv4).toIPv4MappedAddress() : (address as ipaddr.IPv6);
    return { text: address.toString(), key: Buffer.from(v6.toByteArray()).toString('hex') };
  } catch {
    return 'error';
  }
}

function actual(ip: string): { text: string; key: string } | 'error' {
  try {
    return { text: canonicalIp(ip), key: ipKey(ip).toString('hex') };
  } catch {
    return 'error';
  }
}

// Octet-like pieces, including the forms the fast path must leave to ipaddr.js: leading zeros
// (octal there), hex, values above 255, empty pieces.
const piece = fc.oneof(
  fc.integer({ min: 0, max: 255 }).map(String),
  fc.integer({ min: 0, max: 999 }).map(String),
  fc.integer({ min: 0, max: 255 }).map((n) => `0${n}`),
  fc.integer({ min: 0, max: 255 }).map((n) => `0x${n.toString(16)}`),
  fc.constantFrom('', ' 1', '1 ', '-1', '00'),
);

describe('ipKey and canonicalIp', () => {
  test.prop([fc.array(piece, { minLength: 1, maxLength: 5 })], { numRuns: 2000 })('agree with ipaddr.js on dotted strings of any shape', (parts) => {
    const ip = parts.join('.');
    expect(actual(ip)).toEqual(reference(ip));
  });

  test.prop([fc.ipV4(), fc.ipV6()])('agree with ipaddr.js on valid IPv4 and IPv6 addresses', (v4, v6) => {
    expect(actual(v4)).toEqual(reference(v4));
    expect(actual(v6)).toEqual(reference(v6));
    expect(actual(`::ffff:${v4}`)).toEqual(reference(`::ffff:${v4}`));
  });
});
