import { type Family, familyBits, formatIp, parseCidr, parseIp, PortbanditError } from '../core/index.js';

export { familyBits, type Family } from '../core/index.js';

/** An inclusive range of addresses of one family, as integers. */
export interface AddressRange {
  readonly family: Family;
  readonly start: bigint;
  readonly end: bigint;
}

/** Parse one IPv4 or IPv6 address (strict: src/core/address.ts) into its family and integer value. */
export function parseAddress(text: string, where?: string): { family: Family; value: bigint } {
  return parseIp(text, where);
}

/** Format an integer address of a family as its canonical text (IPv6 compressed, lower case). */
export function formatAddress(family: Family, value: bigint): string {
  return formatIp(family, value);
}

/**
 * Parse a target specification: a single address, a CIDR ("198.18.0.0/24", "2001:db8::/64"),
 * or an inclusive range ("198.18.0.10-198.18.0.20"). Host bits set in a CIDR are cleared,
 * as nmap does.
 */
export function parseTargetSpec(spec: string, where?: string): AddressRange {
  // Strict, like every address surface: no surrounding whitespace (file readers trim their fields).
  const text = spec;
  if (text.includes('/')) {
    const cidr = parseCidr(text, where);
    const hostBits = BigInt(familyBits(cidr.family) - cidr.prefix);
    return { family: cidr.family, start: cidr.network, end: cidr.network + (1n << hostBits) - 1n };
  }
  const dash = text.indexOf('-');
  if (dash >= 0) {
    const a = parseAddress(text.slice(0, dash), where);
    const b = parseAddress(text.slice(dash + 1), where);
    if (a.family !== b.family || a.value > b.value) {
      throw new PortbanditError('PB_ERR_ADDRESS', `expected "first-last" of one family with first <= last, got ${JSON.stringify(spec)}`, {
        where,
      });
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

/** The context prefix strategies use: the IPv4 /24 or IPv6 /64 holding the address (src/core/address.ts). */
export { contextPrefix } from '../core/index.js';
