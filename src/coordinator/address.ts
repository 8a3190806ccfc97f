import ipaddr from 'ipaddr.js';
import { hostPrefix } from '../core/host-prefix.js';
import { PortbanditError } from '../core/errors.js';

/** An address family: IPv4 addresses are 32-bit, IPv6 128-bit integers. */
export type Family = 4 | 6;

/** An inclusive range of addresses of one family, as integers. */
export interface AddressRange {
  readonly family: Family;
  readonly start: bigint;
  readonly end: bigint;
}

const BITS: Record<Family, number> = { 4: 32, 6: 128 };

/** Number of bits in an address of this family. */
export function familyBits(family: Family): number {
  return BITS[family];
}

/** Parse one IPv4 or IPv6 address into its family and integer value. */
export function parseAddress(text: string, where?: string): { family: Family; value: bigint } {
  const trimmed = text.trim();
  // Four-part dotted decimal only: ipaddr.js would also accept "10" or "0x0a.1" as IPv4.
  if (ipaddr.IPv4.isValidFourPartDecimal(trimmed)) {
    const bytes = ipaddr.IPv4.parse(trimmed).toByteArray();
    return { family: 4, value: bytesToBigint(bytes) };
  }
  if (ipaddr.IPv6.isValid(trimmed)) {
    const parsed = ipaddr.IPv6.parse(trimmed);
    return { family: 6, value: bytesToBigint(parsed.toByteArray()) };
  }
  throw new PortbanditError('PB_ERR_ADDRESS', `expected an IPv4 or IPv6 address, got ${JSON.stringify(text)}`, { where });
}

/** Format an integer address of a family as its canonical text (IPv6 compressed, lower case). */
export function formatAddress(family: Family, value: bigint): string {
  if (family === 4) {
    const n = Number(value);
    return `${(n >>> 24) & 255}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
  }
  const bytes = new Array<number>(16);
  let v = value;
  for (let i = 15; i >= 0; i--) {
    bytes[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return ipaddr.fromByteArray(bytes).toString();
}

function bytesToBigint(bytes: readonly number[]): bigint {
  let v = 0n;
  for (const b of bytes) v = (v << 8n) | BigInt(b);
  return v;
}

/**
 * Parse a target specification: a single address, a CIDR ("198.18.0.0/24", "2001:db8::/64"),
 * or an inclusive range ("198.18.0.10-198.18.0.20"). Host bits set in a CIDR are cleared,
 * as nmap does.
 */
export function parseTargetSpec(spec: string, where?: string): AddressRange {
  const text = spec.trim();
  const slash = text.indexOf('/');
  if (slash >= 0) {
    const { family, value } = parseAddress(text.slice(0, slash), where);
    const lenText = text.slice(slash + 1);
    const bits = familyBits(family);
    const len = /^\d{1,3}$/.test(lenText) ? Number(lenText) : NaN;
    if (!(len >= 0 && len <= bits)) {
      throw new PortbanditError('PB_ERR_ADDRESS', `expected a prefix length 0-${bits} in ${JSON.stringify(spec)}`, { where });
    }
    const hostBits = BigInt(bits - len);
    const start = (value >> hostBits) << hostBits;
    return { family, start, end: start + (1n << hostBits) - 1n };
  }
  const dash = text.indexOf('-');
  if (dash >= 0) {
    const a = parseAddress(text.slice(0, dash), where);
    const b = parseAddress(text.slice(dash + 1), where);
    if (a.family !== b.family || a.value > b.value) {
      throw new PortbanditError('PB_ERR_ADDRESS', `expected "first-last" of one family with first <= last, got ${JSON.stringify(spec)}`, { where });
    }
    return { family: a.family, start: a.value, end: b.value };
  }
  const a = parseAddress(text, where);
  return { family: a.family, start: a.value, end: a.value };
}

/**
 * The shortest text for a range: a single address, a CIDR when the range is exactly one
 * aligned block, otherwise "first-last".
 */
export function formatRange(range: AddressRange): string {
  const { family, start, end } = range;
  if (start === end) return formatAddress(family, start);
  const size = end - start + 1n;
  if ((size & (size - 1n)) === 0n && start % size === 0n) {
    const hostBits = size.toString(2).length - 1;
    return `${formatAddress(family, start)}/${familyBits(family) - hostBits}`;
  }
  return `${formatAddress(family, start)}-${formatAddress(family, end)}`;
}

/** Split an arbitrary range into the minimal list of aligned CIDR blocks. */
export function rangeToCidrs(range: AddressRange): string[] {
  const out: string[] = [];
  let start = range.start;
  const bits = familyBits(range.family);
  while (start <= range.end) {
    // Largest aligned block starting at `start` that fits before `end`.
    let hostBits = 0;
    while (hostBits < bits) {
      const size = 1n << BigInt(hostBits + 1);
      if (start % size !== 0n || start + size - 1n > range.end) break;
      hostBits++;
    }
    out.push(`${formatAddress(range.family, start)}/${bits - hostBits}`);
    start += 1n << BigInt(hostBits);
  }
  return out;
}

/** The context prefix strategies use: the IPv4 /24 or IPv6 /64 holding the address. */
export function contextPrefix(family: Family, value: bigint): string {
  // One definition of the context prefix for the coordinator and the simulator (src/core).
  return hostPrefix(formatAddress(family, value));
}
