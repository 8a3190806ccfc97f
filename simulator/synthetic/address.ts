/** 198.18.0.0 as a 32-bit integer: host h of a synthetic scope is this + h. */
const BASE = 198 * 2 ** 24 + 18 * 2 ** 16;

/** Address of host `h` (0-based) of a synthetic scope: 198.18.0.0 + h. */
export function syntheticIp(h: number): string {
  const n = BASE + h;
  return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

/** The /24 that subnet `s` (hosts 256s .. 256s + 255) covers, as a CIDR. */
export function syntheticSubnet(s: number): string {
  return `${syntheticIp(s * 256)}/24`;
}
