import { type Cidr, cidrContains, formatCidr, isCanonicalIp, parseTarget, tryParseIp, PortbanditError } from '../src/core/index.js';

/**
 * The agent's own target allowlist (`--allow CIDR ...`). Empty means nothing is allowed: an
 * agent never scans an address because a coordinator asked, only because its operator allowed it.
 * Entries and targets are read by the one strict address parser (src/core/address.ts), and a
 * target must already be in canonical text: that exact string is what nmap and masscan receive,
 * so the allow check and the scanner can never read it differently.
 */
export class AllowList {
  private readonly ranges: readonly Cidr[];
  readonly specs: readonly string[];

  private constructor(ranges: Cidr[], specs: string[]) {
    this.ranges = ranges;
    this.specs = specs;
  }

  /** Parse CIDRs or single addresses; throws PB_ERR_ADDRESS naming the bad entry. */
  static parse(specs: readonly string[], where = '--allow'): AllowList {
    const ranges = specs.map((raw, i) => {
      try {
        return parseTarget(raw);
      } catch {
        throw new PortbanditError(
          'PB_ERR_ADDRESS',
          `expected a CIDR (198.18.0.0/15) or an address (IPv4: four decimal octets without leading zeros), got ${JSON.stringify(raw)}`,
          { where: `${where}[${i}]` },
        );
      }
    });
    return new AllowList(ranges, ranges.map(formatCidr));
  }

  /** Why `ip` may not be scanned, or undefined when it may: canonical text and inside a range. */
  refusal(ip: unknown): string | undefined {
    if (!isCanonicalIp(ip)) {
      return `${JSON.stringify(ip)} is not an address in canonical text (IPv4: four decimal octets without leading zeros; IPv6: RFC 5952); scanners read such strings differently`;
    }
    const address = tryParseIp(ip)!;
    if (!this.ranges.some((r) => cidrContains(r, address))) {
      return `${ip} is outside this agent's --allow ranges (${this.specs.length > 0 ? this.specs.join(', ') : 'nothing (no --allow given)'})`;
    }
    return undefined;
  }

  /** Whether `ip` is canonical address text inside one of the allowed ranges. */
  allows(ip: unknown): boolean {
    return this.refusal(ip) === undefined;
  }

  /** Throws PB_ERR_UNSAFE_TARGET unless every address is canonical and allowed. */
  assertAllowed(ips: readonly string[], where = 'target'): void {
    for (const ip of ips) {
      const why = this.refusal(ip);
      if (why !== undefined) throw new PortbanditError('PB_ERR_UNSAFE_TARGET', `${why}; refusing to scan it`, { where });
    }
  }
}
