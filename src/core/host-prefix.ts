import ipaddr from 'ipaddr.js';
import { PortbanditError } from './errors.js';

/**
 * The network prefix a host is grouped by as strategy context: the /24 of an IPv4 address
 * ("198.18.3.0/24"), the /64 of an IPv6 address ("2001:db8:1:2::/64").
 */
export function hostPrefix(ip: string): string {
  // Fast path for dotted quads: the simulator asks once per host of a /16.
  const last = ip.lastIndexOf('.');
  if (last > 0 && ip.indexOf(':') < 0) return `${ip.slice(0, last)}.0/24`;
  let addr: ipaddr.IPv4 | ipaddr.IPv6;
  try {
    addr = ipaddr.parse(ip);
  } catch (cause) {
    throw new PortbanditError('PB_ERR_ADDRESS', `expected an IPv4 or IPv6 address, got ${JSON.stringify(ip)}`, { where: 'ip', cause });
  }
  if (addr.kind() === 'ipv4') return hostPrefix(addr.toString());
  const v6 = addr as ipaddr.IPv6;
  if (v6.isIPv4MappedAddress()) return hostPrefix(v6.toIPv4Address().toString());
  const parts = v6.parts.slice(0, 4).concat([0, 0, 0, 0]);
  return `${new ipaddr.IPv6(parts).toRFC5952String()}/64`;
}

/** Whether `ip` lies inside `cidr` ("198.18.4.0/24"); throws PB_ERR_ADDRESS naming `where` on a bad CIDR. */
export function createCidrMatcher(cidr: string, where: string): (ip: string) => boolean {
  let range: [ipaddr.IPv4 | ipaddr.IPv6, number];
  try {
    range = ipaddr.parseCIDR(cidr);
  } catch (cause) {
    throw new PortbanditError('PB_ERR_ADDRESS', `expected a CIDR such as "198.18.4.0/24", got ${JSON.stringify(cidr)}`, { where, cause });
  }
  const [net, bits] = range;
  return (ip: string) => {
    if (!ipaddr.isValid(ip)) return false;
    const addr = ipaddr.parse(ip);
    return addr.kind() === net.kind() && addr.match(net, bits);
  };
}
