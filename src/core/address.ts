import { PortbanditError } from './errors.js';

/**
 * The one address parser: every surface (scope and blocklist, work items, results, agent allow
 * lists, queries, recordings, importers, stores) reads IP text through this module, so two
 * readers can never disagree about what a string means.
 *
 * Strict by default:
 * - IPv4 is four dotted decimal octets 0-255 without leading zeros (`010.0.0.1`, `198.022.250.1`
 *   are refused: ipaddr.js and inet_aton read them as octal, nmap and masscan as decimal); no
 *   short forms (`10.1`), no hex, no whitespace.
 * - IPv6 is RFC 4291 text (hex groups, one `::`, an optional dotted-quad tail); no zone ids
 *   (`fe80::1%eth0`), no brackets.
 * - An IPv4-mapped IPv6 address (`::ffff:198.18.0.1`) is the IPv4 address it maps: it parses
 *   to family 4 and prints as `198.18.0.1`. It is the same host to every scanner, so it gets
 *   one canonical text.
 * Canonical text: IPv4 dotted decimal; IPv6 per RFC 5952 (lower case, no leading zeros, the
 * longest run of two or more zero groups as `::`).
 */

/** An address family: IPv4 addresses are 32-bit, IPv6 128-bit integers. */
export type Family = 4 | 6;

/** A parsed address: its family and its value as an unsigned integer. */
export interface IpAddress {
  readonly family: Family;
  readonly value: bigint;
}

/** A parsed CIDR block: family, network address (host bits cleared) and prefix length. */
export interface Cidr {
  readonly family: Family;
  readonly network: bigint;
  readonly prefix: number;
}

const BITS: Record<Family, number> = { 4: 32, 6: 128 };
const MAPPED_PREFIX = 0xffffn << 32n;
const V4_MASK = 0xffffffffn;

/** Number of bits in an address of this family. */
export function familyBits(family: Family): number {
  return BITS[family];
}

function addressError(text: unknown, where: string | undefined, what = 'an IPv4 or IPv6 address'): PortbanditError {
  const shown = typeof text === 'string' ? JSON.stringify(text.length > 80 ? `${text.slice(0, 77)}...` : text) : String(text);
  return new PortbanditError(
    'PB_ERR_ADDRESS',
    `expected ${what}, got ${shown} (IPv4: four decimal octets 0-255 without leading zeros)`,
    where !== undefined ? { where } : {},
  );
}

/** The 32-bit value of a strict dotted quad, or -1. Hand-written: it runs on every lease and ingest. */
function parseV4(text: string, start = 0, end = text.length): number {
  let value = 0;
  let octets = 0;
  let i = start;
  while (octets < 4) {
    const first = i;
    let octet = 0;
    while (i < end) {
      const c = text.charCodeAt(i);
      if (c < 48 || c > 57) break;
      octet = octet * 10 + (c - 48);
      i++;
    }
    const digits = i - first;
    if (digits === 0 || digits > 3 || octet > 255 || (digits > 1 && text.charCodeAt(first) === 48)) return -1;
    value = value * 256 + octet;
    octets++;
    if (octets < 4) {
      if (i >= end || text.charCodeAt(i) !== 46) return -1;
      i++;
    }
  }
  return i === end ? value : -1;
}

/**
 * The 32-bit value of a strict dotted quad (the same reading as parseIp), or -1: for hot paths
 * that want a number, not a bigint (the store's keys).
 */
export function ipv4Value(text: string): number {
  return text.indexOf(':') < 0 ? parseV4(text) : -1;
}

function hexDigit(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  return -1;
}

/** The 128-bit value of RFC 4291 IPv6 text, or undefined. */
function parseV6(text: string): bigint | undefined {
  if (text.length < 2 || text.length > 45) return undefined;
  const double = text.indexOf('::');
  if (double >= 0 && text.indexOf('::', double + 1) >= 0) return undefined;
  const head = double >= 0 ? text.slice(0, double) : text;
  const tail = double >= 0 ? text.slice(double + 2) : '';
  const groupsOf = (part: string, allowV4Tail: boolean): number[] | undefined => {
    if (part === '') return [];
    const pieces = part.split(':');
    const out: number[] = [];
    for (let k = 0; k < pieces.length; k++) {
      const piece = pieces[k]!;
      if (allowV4Tail && k === pieces.length - 1 && piece.includes('.')) {
        const v4 = parseV4(piece);
        if (v4 < 0) return undefined;
        out.push(Math.floor(v4 / 65536), v4 % 65536);
        continue;
      }
      if (piece.length < 1 || piece.length > 4) return undefined;
      let g = 0;
      for (let j = 0; j < piece.length; j++) {
        const d = hexDigit(piece.charCodeAt(j));
        if (d < 0) return undefined;
        g = g * 16 + d;
      }
      out.push(g);
    }
    return out;
  };
  const h = groupsOf(head, double < 0);
  const t = groupsOf(tail, true);
  if (!h || !t) return undefined;
  let groups: number[];
  if (double >= 0) {
    if (h.length + t.length > 7) return undefined;
    groups = [...h, ...new Array<number>(8 - h.length - t.length).fill(0), ...t];
  } else {
    if (h.length !== 8) return undefined;
    groups = h;
  }
  let value = 0n;
  for (const g of groups) value = (value << 16n) | BigInt(g);
  return value;
}

/** An IPv4-mapped IPv6 value becomes the IPv4 address it maps. */
function unmap(value: bigint): IpAddress {
  return value >> 32n === 0xffffn ? { family: 4, value: value & V4_MASK } : { family: 6, value };
}

/** Parse one address strictly; undefined when it is not one (no exception: for hot checks). */
export function tryParseIp(text: unknown): IpAddress | undefined {
  if (typeof text !== 'string') return undefined;
  if (text.indexOf(':') < 0) {
    const v4 = parseV4(text);
    return v4 < 0 ? undefined : { family: 4, value: BigInt(v4) };
  }
  const v6 = parseV6(text);
  return v6 === undefined ? undefined : unmap(v6);
}

/** Parse one address strictly; throws PB_ERR_ADDRESS naming `where`. */
export function parseIp(text: unknown, where?: string): IpAddress {
  const parsed = tryParseIp(text);
  if (!parsed) throw addressError(text, where);
  return parsed;
}

/** The canonical text of an address value. */
export function formatIp(family: Family, value: bigint): string {
  if (family === 4) {
    const n = Number(value);
    return `${Math.floor(n / 16777216) % 256}.${Math.floor(n / 65536) % 256}.${Math.floor(n / 256) % 256}.${n % 256}`;
  }
  if (value >> 32n === 0xffffn) return formatIp(4, value & V4_MASK);
  const groups: number[] = [];
  for (let i = 7; i >= 0; i--) groups.push(Number((value >> BigInt(i * 16)) & 0xffffn));
  // RFC 5952: the longest run (first on a tie) of two or more zero groups becomes "::".
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (list: number[]) => list.map((g) => g.toString(16)).join(':');
  if (bestStart < 0) return hex(groups);
  return `${hex(groups.slice(0, bestStart))}::${hex(groups.slice(bestStart + bestLen))}`;
}

/** The canonical text of an address (`::FFFF:198.18.0.1` -> `198.18.0.1`); throws PB_ERR_ADDRESS. */
export function canonicalIp(text: unknown, where?: string): string {
  if (typeof text === 'string' && text.indexOf(':') < 0 && parseV4(text) >= 0) return text;
  const { family, value } = parseIp(text, where);
  return formatIp(family, value);
}

/** True only for a string that is already an address in canonical text (what scanners may receive). */
export function isCanonicalIp(text: unknown): text is string {
  const parsed = tryParseIp(text);
  return parsed !== undefined && formatIp(parsed.family, parsed.value) === text;
}

/** Parse `address/prefix` strictly (decimal prefix, no leading zeros); host bits are cleared. */
export function tryParseCidr(text: unknown): Cidr | undefined {
  if (typeof text !== 'string') return undefined;
  const slash = text.indexOf('/');
  if (slash < 0) return undefined;
  const lenText = text.slice(slash + 1);
  if (!/^(0|[1-9]\d{0,2})$/.test(lenText)) return undefined;
  let prefix = Number(lenText);
  const addressText = text.slice(0, slash);
  let family: Family;
  let value: bigint;
  if (addressText.indexOf(':') < 0) {
    const v4 = parseV4(addressText);
    if (v4 < 0) return undefined;
    family = 4;
    value = BigInt(v4);
  } else {
    const v6 = parseV6(addressText);
    if (v6 === undefined) return undefined;
    if (prefix > 128) return undefined;
    // A block inside ::ffff:0:0/96 is the IPv4 block it maps; a shorter one stays IPv6.
    if (prefix >= 96 && v6 >> 32n === 0xffffn) {
      family = 4;
      value = v6 & V4_MASK;
      prefix -= 96;
    } else {
      family = 6;
      value = v6;
    }
  }
  const bits = BITS[family];
  if (prefix > bits) return undefined;
  const hostBits = BigInt(bits - prefix);
  return { family, network: (value >> hostBits) << hostBits, prefix };
}

/** Parse a CIDR block strictly; throws PB_ERR_ADDRESS naming `where`. */
export function parseCidr(text: unknown, where?: string): Cidr {
  const parsed = tryParseCidr(text);
  if (!parsed) throw addressError(text, where, 'a CIDR block such as "198.18.4.0/24" or "2001:db8::/64"');
  return parsed;
}

/** Canonical text of a CIDR block (network address, host bits cleared). */
export function formatCidr(cidr: Cidr): string {
  return `${formatIp(cidr.family, cidr.network)}/${cidr.prefix}`;
}

/** The first and last address of a block. */
export function cidrBounds(cidr: Cidr): { start: bigint; end: bigint } {
  const hostBits = BigInt(BITS[cidr.family] - cidr.prefix);
  return { start: cidr.network, end: cidr.network + (1n << hostBits) - 1n };
}

/** Whether an address lies in a block (same family only). */
export function cidrContains(cidr: Cidr, address: IpAddress): boolean {
  if (address.family !== cidr.family) return false;
  const hostBits = BigInt(BITS[cidr.family] - cidr.prefix);
  return address.value >> hostBits === cidr.network >> hostBits;
}

/**
 * An address or a CIDR block in canonical text, as the query language and the allow list take
 * them: `198.18.0.7`, `198.18.0.0/24` (host bits cleared). Throws PB_ERR_ADDRESS naming `where`.
 */
export function canonicalTarget(text: unknown, where?: string): string {
  if (typeof text === 'string' && text.includes('/')) return formatCidr(parseCidr(text, where));
  return canonicalIp(text, where);
}

/** A target (address or CIDR) as a block: a single address is a /32 or /128. */
export function parseTarget(text: unknown, where?: string): Cidr {
  if (typeof text === 'string' && text.includes('/')) return parseCidr(text, where);
  const { family, value } = parseIp(text, where);
  return { family, network: value, prefix: BITS[family] };
}

/**
 * The 16-byte sort key of an address: IPv4 as IPv4-mapped IPv6, so an IPv4 or IPv6 block is one
 * contiguous key range.
 */
export function ipKeyBytes(address: IpAddress): Uint8Array {
  const key = new Uint8Array(16);
  let v = address.family === 4 ? MAPPED_PREFIX | address.value : address.value;
  for (let i = 15; i >= 0; i--) {
    key[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return key;
}

/** The first and last key of a block. */
export function cidrKeyRange(cidr: Cidr): [Uint8Array, Uint8Array] {
  const { start, end } = cidrBounds(cidr);
  return [ipKeyBytes({ family: cidr.family, value: start }), ipKeyBytes({ family: cidr.family, value: end })];
}

/**
 * The network prefix a host is grouped by as strategy context: the /24 of an IPv4 address
 * ("198.18.3.0/24"), the /64 of an IPv6 address ("2001:db8:1:2::/64").
 */
export function hostPrefix(ip: string): string {
  const { family, value } = parseIp(ip, 'ip');
  return contextPrefix(family, value);
}

/** The context prefix of a parsed address (see hostPrefix). */
export function contextPrefix(family: Family, value: bigint): string {
  const prefix = family === 4 ? 24 : 64;
  const hostBits = BigInt(BITS[family] - prefix);
  return `${formatIp(family, (value >> hostBits) << hostBits)}/${prefix}`;
}

/** A predicate: whether an address text lies inside `cidr`; throws PB_ERR_ADDRESS naming `where` on a bad CIDR. */
export function createCidrMatcher(cidr: string, where: string): (ip: string) => boolean {
  const block = parseCidr(cidr, where);
  return (ip: string) => {
    const address = tryParseIp(ip);
    return address !== undefined && cidrContains(block, address);
  };
}
