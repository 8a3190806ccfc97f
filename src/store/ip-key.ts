import { canonicalIp as canonical, cidrKeyRange, ipKeyBytes, ipv4Value, parseIp, parseTarget } from '../core/index.js';

/**
 * Addresses as sortable 16-byte keys (IPv4 as IPv4-mapped IPv6), so an IPv4 or IPv6 CIDR block
 * is one contiguous key range: `ip:198.18.0.0/24` becomes `ip_key BETWEEN lo AND hi` in SQL.
 * Parsing is the one strict address parser (src/core/address.ts); this module only makes Buffers.
 */

/** The canonical text form of an address (`::ffff:198.18.0.1` becomes `198.18.0.1`). */
export function canonicalIp(ip: string, where = 'ip'): string {
  return canonical(ip, where);
}

/** The 16-byte key of an address. */
export function ipKey(ip: string, where = 'ip'): Buffer {
  // IPv4 without bigints: every lease, ingest and lookup computes one.
  const v4 = ipv4Value(ip);
  if (v4 >= 0) {
    const key = Buffer.alloc(16);
    key[10] = 0xff;
    key[11] = 0xff;
    key.writeUInt32BE(v4, 12);
    return key;
  }
  const bytes = ipKeyBytes(parseIp(ip, where));
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** The first and last key of an address (both equal) or CIDR block. */
export function ipKeyRange(value: string, where = 'ip'): [Buffer, Buffer] {
  const [lo, hi] = cidrKeyRange(parseTarget(value, where));
  return [Buffer.from(lo), Buffer.from(hi)];
}

/** True when `ip` lies in the address or CIDR block `value` (used by in-memory checks). */
export function ipMatches(ip: string, value: string): boolean {
  const key = ipKey(ip);
  const [lo, hi] = ipKeyRange(value);
  return Buffer.compare(key, lo) >= 0 && Buffer.compare(key, hi) <= 0;
}
