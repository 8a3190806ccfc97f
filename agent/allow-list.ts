import ipaddr from 'ipaddr.js';
import { PortbanditError } from '../src/core/errors.js';

type Range = [ipaddr.IPv4 | ipaddr.IPv6, number];

/**
 * The agent's own target allowlist (`--allow CIDR ...`). Empty means nothing is allowed: an
 * agent never scans an address because a coordinator asked, only because its operator allowed it.
 */
export class AllowList {
  private readonly ranges: readonly Range[];
  readonly specs: readonly string[];

  private constructor(ranges: Range[], specs: string[]) {
    this.ranges = ranges;
    this.specs = specs;
  }

  /** Parse CIDRs or single addresses; throws PB_ERR_ADDRESS naming the bad entry. */
  static parse(specs: readonly string[], where = '--allow'): AllowList {
    const ranges: Range[] = [];
    specs.forEach((raw, i) => {
      const spec = raw.trim();
      const address = spec.split('/')[0]!;
      // ipaddr.js accepts legacy forms ("10.0.0" = 10.0.0.0); an allowlist must say exactly what it means.
      const strict = address.includes(':') ? ipaddr.IPv6.isValid(address) : ipaddr.IPv4.isValidFourPartDecimal(address);
      try {
        if (!strict) throw new Error('not a dotted quad or IPv6 address');
        if (spec.includes('/')) ranges.push(ipaddr.parseCIDR(spec));
        else {
          const addr = ipaddr.parse(spec);
          ranges.push([addr, addr.kind() === 'ipv4' ? 32 : 128]);
        }
      } catch {
        throw new PortbanditError('PB_ERR_ADDRESS', `expected a CIDR (198.18.0.0/15) or an address, got ${JSON.stringify(raw)}`, { where: `${where}[${i}]` });
      }
    });
    return new AllowList(ranges, specs.map((s) => s.trim()));
  }

  /** Whether `ip` lies in one of the allowed ranges (IPv4-mapped IPv6 is treated as IPv4). */
  allows(ip: string): boolean {
    let addr: ipaddr.IPv4 | ipaddr.IPv6;
    try {
      addr = ipaddr.process(ip);
    } catch {
      return false;
    }
    return this.ranges.some(([net, bits]) => net.kind() === addr.kind() && addr.match([net, bits] as never));
  }

  /** Throws PB_ERR_UNSAFE_TARGET unless every address is allowed. */
  assertAllowed(ips: readonly string[], where = 'target'): void {
    for (const ip of ips) {
      if (!this.allows(ip)) {
        const allowed = this.specs.length > 0 ? this.specs.join(', ') : 'nothing (no --allow given)';
        throw new PortbanditError('PB_ERR_UNSAFE_TARGET', `${ip} is outside this agent's --allow ranges (${allowed}); refusing to scan it`, { where });
      }
    }
  }
}
