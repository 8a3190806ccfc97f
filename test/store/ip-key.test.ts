import { fc, test } from '@fast-check/vitest';
import ipaddr from 'ipaddr.js';
import { describe, expect } from 'vitest';
import { canonicalIp, ipKey } from '../../src/store/ip-key.js';

function actual(ip: string): { text: string; key: string } | 'error' {
  try {
    return { text: canonicalIp(ip), key: ipKey(ip).toString('hex') };
  } catch {
    return 'error';
  }
}

/** The strict reading: four decimal octets 0-255, no leading zeros, nothing else. */
function strictQuad(ip: string): { text: string; key: string } | 'error' {
  const m = /^(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})$/.exec(ip);
  if (!m || m.slice(1).some((o) => Number(o) > 255)) return 'error';
  const bytes = m.slice(1).map(Number);
  return { text: ip, key: `00000000000000000000ffff${Buffer.from(bytes).toString('hex')}` };
}

// Octet-like pieces, including the forms ipaddr.js reads as octal or hex (leading zeros, 0x),
// which nmap and masscan read differently: the store must refuse them.
const piece = fc.oneof(
  fc.integer({ min: 0, max: 255 }).map(String),
  fc.integer({ min: 0, max: 999 }).map(String),
  fc.integer({ min: 0, max: 255 }).map((n) => `0${n}`),
  fc.integer({ min: 0, max: 255 }).map((n) => `0x${n.toString(16)}`),
  fc.constantFrom('', ' 1', '1 ', '-1', '00'),
);

describe('ipKey and canonicalIp', () => {
  test.prop([fc.array(piece, { minLength: 1, maxLength: 5 })], { numRuns: 2000 })('accept exactly the strict dotted quads', (parts) => {
    const ip = parts.join('.');
    expect(actual(ip)).toEqual(strictQuad(ip));
  });

  test.prop([fc.ipV4(), fc.ipV6()])(
    'agree with ipaddr.js on canonical IPv4 and on IPv6 without a dotted tail; mapped IPv4 is the IPv4 address',
    (v4, v6) => {
      expect(actual(v4)).toEqual(strictQuad(v4));
      expect(actual(`::ffff:${v4}`)).toEqual(strictQuad(v4));
      if (!v6.includes('.')) {
        const ref = ipaddr.IPv6.parse(v6);
        const key = Buffer.from(ref.toByteArray()).toString('hex');
        if (ref.isIPv4MappedAddress()) expect(actual(v6)).toEqual({ text: ref.toIPv4Address().toString(), key });
        else expect(actual(v6)).toEqual({ text: ref.toRFC5952String(), key });
      }
    },
  );
});
