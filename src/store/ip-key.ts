import ipaddr from 'ipaddr.js';
import { PortbanditError } from '../core/errors.js';

/**
 * Addresses as sortable 16-byte keys (IPv4 as IPv4-mapped IPv6), so an IPv4 or IPv6 CIDR block
 * is one contiguous key range: `ip:198.18.0.0/24` becomes `ip_key BETWEEN lo AND hi` in SQL.
 */

const DOTTED_QUAD = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/u;

/**
 * The octets of an IPv4 address already in canonical dotted-decimal form (no leading zeros), or
 * undefined for anything else. The hot paths (every lease, ingest and lookup) see only these;
 * ipaddr.js's general parser (octal, hex, short forms, IPv6) costs ~10x more.
 */
function canonicalQuad(ip: string): [number, number, number, number] | undefined {
  const m = DOTTED_QUAD.exec(ip);
  if (!m) return undefined;
  const out: [number, number, number, number] = [0, 0, 0, 0];
  for (let i = 0; i < 4; i++) {
    const text = m[i + 1]!;
    if (text.length > 1 && text.startsWith('0')) return undefined;
    const octet = Number(text);
    if (octet > 255) return undefined;
    out[i] = octet;
  }
  return out;
}

/** The canonical text form of an address (`::ffff:198.18.0.1` becomes `198.18.0.1`). */
export function canonicalIp(ip: string, where = 'ip'): string {
  if (canonicalQuad(ip)) return ip;
  try {
    return ipaddr.process(ip).toString();
  } catch (cause) {
    throw new PortbanditError('PB_ERR_ADDRESS', `'${ip}' is not an IPv4 or IPv6 address`, { where, cause });
  }
}

/** The 16-byte key of an address. */
export function ipKey(ip: string, where = 'ip'): Buffer {
  const quad = canonicalQuad(ip);
  if (quad) {
    const key = Buffer.alloc(16);
    key[10] = 0xff;
    key[11] = 0xff;
    key.set(quad, 12);
    return key;
  }
  let address: ipaddr.IPv4 | ipaddr.IPv6;
  try {
    address = ipaddr.process(ip);
  } catch (cause) {
    throw new PortbanditError('PB_ERR_ADDRESS', `'${ip}' is not an IPv4 or IPv6 address`, { where, cause });
  }
  const v6 = address.kind() === 'ipv4' ? (address as ipaddr.IPv4).toIPv4MappedAddress() : (address as ipaddr.IPv6);
  return Buffer.from(v6.toByteArray());
}

/** The first and last key of an address (both equal) or CIDR block. */
export function ipKeyRange(value: string, where = 'ip'): [Buffer, Buffer] {
  if (!value.includes('/')) {
    const key = ipKey(value, where);
    return [key, key];
  }
  let address: ipaddr.IPv4 | ipaddr.IPv6;
  let prefix: number;
  try {
    [address, prefix] = ipaddr.parseCIDR(value);
  } catch (cause) {
    throw new PortbanditError('PB_ERR_ADDRESS', `'${value}' is not a CIDR block`, { where, cause });
  }
  if (address.kind() === 'ipv4') {
    address = (address as ipaddr.IPv4).toIPv4MappedAddress();
    prefix += 96;
  }
  const bytes = (address as ipaddr.IPv6).toByteArray();
  const lo = Buffer.alloc(16);
  const hi = Buffer.alloc(16);
  for (let i = 0; i < 16; i++) {
    const bits = Math.max(0, Math.min(8, prefix - i * 8));
    const mask = bits === 0 ? 0 : (0xff << (8 - bits)) & 0xff;
    lo[i] = bytes[i]! & mask;
    hi[i] = (bytes[i]! & mask) | (~mask & 0xff);
  }
  return [lo, hi];
}

/** True when `ip` lies in the address or CIDR block `value` (used by in-memory checks). */
export function ipMatches(ip: string, value: string): boolean {
  const key = ipKey(ip);
  const [lo, hi] = ipKeyRange(value);
  return Buffer.compare(key, lo) >= 0 && Buffer.compare(key, hi) <= 0;
}
