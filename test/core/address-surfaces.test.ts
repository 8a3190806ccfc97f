import { fc, test } from '@fast-check/vitest';
import { describe, expect, test as vtest } from 'vitest';
import { AllowList } from '../../agent/allow-list.js';
import { parseMasscanOutput } from '../../src/formats/masscan-output.js';
import { parseNmapXml } from '../../src/formats/nmap-xml.js';
import { checkWorkItem } from '../../agent/work-item.js';
import { formatAddress, parseAddress, parseTargetSpec } from '../../src/coordinator/address.js';
import { normalizeIp } from '../../src/coordinator/coordinator.js';
import type { WorkItem } from '../../src/protocol/protocol.js';
import { normalizeScopeLine } from '../../src/coordinator/scope-file.js';
import { asDnsName } from '../../src/coordinator/names.js';
import {
  canonicalTarget,
  cidrBounds,
  cidrKeyRange,
  contextPrefix,
  formatIp,
  ipKeyBytes,
  tryParseCidr,
  tryParseIp,
} from '../../src/core/address.js';
import { createCidrMatcher, hostPrefix } from '../../src/core/host-prefix.js';
import { PortRanges } from '../../src/core/ports.js';
import { validateObservation } from '../../src/recording/validate.js';
import { canonicalIp as storeCanonicalIp, ipKey, ipKeyRange } from '../../src/store/ip-key.js';
import { parseQuery } from '../../src/store/query.js';

/**
 * One string, every surface that reads an address: they must all accept it or all refuse it, and
 * agree on its canonical text (issue 11: six parsers disagreed, and the agent's allow check read
 * `198.022.250.1` as octal while nmap read it as decimal).
 */

type Verdict = string | 'reject';

function verdict(fn: () => string): Verdict {
  try {
    return fn();
  } catch {
    return 'reject';
  }
}

const everything = AllowList.parse(['0.0.0.0/0', '::/0']);
const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex');

function workItem(ip: string): WorkItem {
  return {
    protocol: 1,
    leaseId: 'lease_x',
    ip,
    tags: [],
    ports: [80],
    round: 0,
    cycle: 0,
    reason: 'cycle',
    issuedAt: 1,
    deadline: 2,
    scan: { versionDetection: true, scripts: [], hostTimeoutSeconds: 30, scriptTimeoutSeconds: 10, preflight: 'none' },
  };
}

const xmlEscape = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/"/g, '&quot;');
const quote = (s: string) => `"${s.replace(/[\\"]/g, (c) => `\\${c}`)}"`;

/** What each address surface makes of `s`. */
function addressSurfaces(s: string): Record<string, Verdict> {
  return {
    'store canonicalIp': verdict(() => storeCanonicalIp(s)),
    'store ipKey': verdict(() => {
      const ref = tryParseIp(s);
      if (!ref) return ipKey(s).toString('hex'); // would be a disagreement: the reference rejects
      expect(ipKey(s).toString('hex')).toBe(hex(ipKeyBytes(ref)));
      return formatIp(ref.family, ref.value);
    }),
    'coordinator parseAddress': verdict(() => {
      const a = parseAddress(s);
      return formatAddress(a.family, a.value);
    }),
    'coordinator normalizeIp (results, rescans)': verdict(() => normalizeIp(s)),
    // A scope entry may also be a DNS name (issue 14.7): that is not an address reading.
    'scope entry': verdict(() => {
      const range = normalizeScopeLine(s, [], 'x').range;
      if (range === asDnsName(s)) throw new Error('a DNS name, not an address');
      return range;
    }),
    'query ip:': verdict(() => {
      const node = parseQuery(`ip:${quote(s)}`);
      if (node?.type !== 'ip') throw new Error('not an ip node');
      return node.value;
    }),
    hostPrefix: verdict(() => {
      const ref = tryParseIp(s);
      const prefix = hostPrefix(s);
      if (ref) expect(prefix).toBe(contextPrefix(ref.family, ref.value));
      return ref ? formatIp(ref.family, ref.value) : prefix;
    }),
    'agent --allow entry': verdict(() => AllowList.parse([s]).specs[0]!.replace(/\/(32|128)$/, '')),
    'recording line': verdict(() => validateObservation({ epoch: 0, ip: s, tags: [], open: [] }, 'x', PortRanges.ALL).ip),
    'masscan -oD import': verdict(() => {
      const line = JSON.stringify({ ip: s, timestamp: '1700000000', port: 80, proto: 'tcp', rec_type: 'status', data: { status: 'open' } });
      return parseMasscanOutput(line, 'x', 'ndjson')[0]!.ip;
    }),
    'nmap XML import': verdict(() => {
      const xml = `<?xml version="1.0"?><nmaprun args="nmap" start="1"><host><status state="up"/><address addr="${xmlEscape(s)}" addrtype="ipv4"/></host><runstats><finished time="2"/></runstats></nmaprun>`;
      return parseNmapXml(xml, 'x').hosts[0]!.ip;
    }),
  };
}

// Adversarial strings from issue 11 and their relatives.
const adversarial = [
  '198.022.250.1',
  '198.18.250.010',
  '0306.18.250.9',
  '010.0.0.1',
  '10.1',
  '10.0.1',
  '10',
  '0x0a.0.0.1',
  '0xc6.18.0.1',
  '198.18.0.1 ',
  ' 198.18.0.1',
  '198.18.0.1\n',
  '198.18.0.1\t',
  '198.18.0.256',
  '198.18.0.-1',
  '198.18..1',
  '198.18.0.1.',
  '+198.18.0.1',
  '1e2.18.0.1',
  '198.18.0.01',
  '198.18.0.00',
  '::ffff:198.18.0.1',
  '::FFFF:198.18.0.1',
  '::ffff:c612:1',
  '::ffff:198.022.0.1',
  '0:0:0:0:0:ffff:198.18.0.1',
  '::198.18.0.1',
  '2001:DB8::1',
  '2001:db8::0001',
  '2001:db8:0:0:0:0:0:1',
  '2001:db8::1::1',
  '2001:db8:::1',
  ':2001:db8::1',
  '2001:db8::1:',
  '2001:db8:0:0:0:0:0:0:1',
  '2001:db8::12345',
  'fe80::1%eth0',
  'fe80::1%25eth0',
  '[2001:db8::1]',
  '::',
  '::1',
  '1::',
  '',
  '.',
  ':',
  'localhost',
  '198.18.0.1 --script=smb-brute',
  '-oN out.txt',
  '１９８.18.0.1',
  '198.18.0.1\u0000',
];

const octet = fc.oneof(
  fc.integer({ min: 0, max: 255 }).map(String),
  fc.integer({ min: 0, max: 999 }).map(String),
  fc.integer({ min: 0, max: 255 }).map((n) => `0${n}`),
  fc.integer({ min: 0, max: 255 }).map((n) => `0${n.toString(8)}`),
  fc.integer({ min: 0, max: 255 }).map((n) => `0x${n.toString(16)}`),
  fc.constantFrom('', ' ', '00', '-1'),
);
const dotted = fc.array(octet, { minLength: 1, maxLength: 5 }).map((p) => p.join('.'));
const v4 = fc.tuple(fc.integer({ min: 18, max: 19 }), fc.nat(255), fc.nat(255)).map(([b, c, d]) => `198.${b}.${c}.${d}`);
const v6 = fc.oneof(
  fc.ipV6(),
  fc.ipV6().map((s) => s.toUpperCase()),
  v4.map((a) => `::ffff:${a}`),
  fc.ipV6().map((s) => `${s}%eth0`),
);
const candidate = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...adversarial) },
  { weight: 3, arbitrary: dotted },
  { weight: 2, arbitrary: v4 },
  { weight: 2, arbitrary: fc.ipV4Extended() },
  { weight: 2, arbitrary: v6 },
  { weight: 1, arbitrary: fc.string({ maxLength: 20 }) },
  { weight: 1, arbitrary: fc.tuple(v4, fc.constantFrom(' ', '\t', '\n', '%', ',', '/')).map(([a, w]) => `${a}${w}`) },
);

describe('every address surface reads a string the same way', () => {
  vtest('the adversarial strings of issue 11', () => {
    for (const s of adversarial) {
      const ref = tryParseIp(s);
      const expected = ref ? formatIp(ref.family, ref.value) : 'reject';
      expect({ s, ...addressSurfaces(s) }).toEqual({ s, ...Object.fromEntries(Object.keys(addressSurfaces(s)).map((k) => [k, expected])) });
    }
    // The octal and short forms are refused everywhere; the mapped form is the IPv4 address.
    for (const s of ['198.022.250.1', '198.18.250.010', '0306.18.250.9', '10.1', 'fe80::1%eth0', ' 198.18.0.1'])
      expect(tryParseIp(s)).toBeUndefined();
    expect(formatIp(4, tryParseIp('::ffff:198.18.0.1')!.value)).toBe('198.18.0.1');
  });

  test.prop([candidate], { numRuns: 1500 })('random and adversarial strings: all accept with one canonical text, or all refuse', (s) => {
    fc.pre(!s.includes('/'));
    const ref = tryParseIp(s);
    const expected = ref ? formatIp(ref.family, ref.value) : 'reject';
    const got = addressSurfaces(s);
    expect(got).toEqual(Object.fromEntries(Object.keys(got).map((k) => [k, expected])));
    // The agent and its scanners take only the canonical text itself: anything else is refused.
    const agent = checkWorkItem(workItem(s), everything);
    expect('item' in agent).toBe(expected === s);
    expect(everything.allows(s)).toBe(expected === s);
  });

  const prefix = fc.oneof(fc.integer({ min: 0, max: 130 }).map(String), fc.constantFrom('08', '-1', '', ' 24', '24 ', '0x10', '1e1'));
  test.prop([candidate, prefix], { numRuns: 1000 })(
    'CIDR blocks: the allow list, queries, scope, store keys and matchers agree',
    (address, len) => {
      const s = `${address}/${len}`;
      fc.pre(address.split('/').length === 1);
      const ref = tryParseCidr(s);
      const canonical = ref ? `${formatIp(ref.family, ref.network)}/${ref.prefix}` : 'reject';
      expect(verdict(() => canonicalTarget(s))).toBe(canonical);
      expect(verdict(() => AllowList.parse([s]).specs[0]!)).toBe(canonical);
      expect(
        verdict(() => {
          const node = parseQuery(`ip:${quote(s)}`);
          return node?.type === 'ip' ? node.value : 'not ip';
        }),
      ).toBe(canonical);
      const bounds = ref ? cidrBounds(ref) : undefined;
      expect(
        verdict(() => {
          const r = parseTargetSpec(s);
          return `${r.family} ${r.start} ${r.end}`;
        }),
      ).toBe(ref ? `${ref.family} ${bounds!.start} ${bounds!.end}` : 'reject');
      expect(
        verdict(() =>
          ipKeyRange(s)
            .map((b) => b.toString('hex'))
            .join('-'),
        ),
      ).toBe(ref ? cidrKeyRange(ref).map(hex).join('-') : 'reject');
      expect(verdict(() => (createCidrMatcher(s, 'x'), 'ok'))).toBe(ref ? 'ok' : 'reject');
    },
  );
});
