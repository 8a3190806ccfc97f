import { PortbanditError } from '../core/index.js';

/**
 * The lab's topology. Everything it creates is named with a `pb` prefix and addressed in
 * 198.18.0.0/15 (RFC 2544's benchmarking range) and nowhere else:
 *
 *   root ns  pblab0 198.19.255.253/30 ──veth── pbgw0 198.19.255.254/30  [ns pb-lab-gw]
 *                                                    bridge pbbr0 198.18.0.1/16, forwarding
 *                                                      ├─veth─ eth0 198.18.1.10/16  [ns pb-lab-0]
 *                                                      └─veth─ eth0 198.18.1.11/16  [ns pb-lab-1] …
 *
 * The hosts sit behind a gateway namespace so that raw-socket scanners in the root namespace
 * (masscan) have a router to address (`--router-ip`), exactly as on a real network.
 * A blackhole route for the whole 198.18.0.0/15 in the root namespace keeps any stray probe to
 * an address that is not a lab host from ever leaving the machine.
 *
 * That is lab instance 0, the one the CLI builds. Instance 1 is a second, independent lab with
 * its own names, links and addresses (`pb-lab1-*`, pblab1/pbgw1/pbbr1, 198.19.255.249/30, hosts
 * from 198.18.129.10 in 198.18.128.0/17, whose route is more specific than instance 0's /16):
 * the test run builds two labs at once, so that its lab files need not wait for each other.
 */
export const LAB = {
  gatewayNs: 'pb-lab-gw',
  hostNsPrefix: 'pb-lab-',
  rootLink: 'pblab0',
  gatewayLink: 'pbgw0',
  bridge: 'pbbr0',
  rootAddress: '198.19.255.253',
  gatewayAddress: '198.19.255.254',
  transferPrefixLength: 30,
  bridgeAddress: '198.18.0.1',
  hostNetwork: '198.18.0.0/16',
  hostPrefixLength: 16,
  safetyNetwork: '198.18.0.0/15',
  maxHosts: 4000,
} as const;

/** How many labs can be up at once (instances 0 .. LAB_INSTANCES - 1). */
export const LAB_INSTANCES = 2;

/** One lab instance's names and addresses (instance 0 is `LAB`). */
export interface LabTopology {
  readonly instance: number;
  readonly gatewayNs: string;
  readonly hostNsPrefix: string;
  readonly rootLink: string;
  readonly gatewayLink: string;
  readonly bridge: string;
  readonly rootAddress: string;
  readonly gatewayAddress: string;
  readonly transferPrefixLength: number;
  readonly bridgeAddress: string;
  readonly hostNetwork: string;
  readonly hostPrefixLength: number;
  /** Host 0's address; host i's is i past it. */
  readonly firstHost: string;
  /** The names of host i's veth pair before it moves into its namespaces: `${peer}${i}`, `${host}${i}`. */
  readonly veth: { readonly peer: string; readonly host: string };
}

const TOPOLOGIES: readonly LabTopology[] = [
  { instance: 0, ...LAB, firstHost: '198.18.1.10', veth: { peer: 'pbp', host: 'pbh' } },
  {
    instance: 1,
    gatewayNs: 'pb-lab1-gw',
    hostNsPrefix: 'pb-lab1-',
    rootLink: 'pblab1',
    gatewayLink: 'pbgw1',
    bridge: 'pbbr1',
    rootAddress: '198.19.255.249',
    gatewayAddress: '198.19.255.250',
    transferPrefixLength: 30,
    bridgeAddress: '198.18.128.1',
    hostNetwork: '198.18.128.0/17',
    hostPrefixLength: 17,
    firstHost: '198.18.129.10',
    veth: { peer: 'pbp1-', host: 'pbh1-' },
  },
];

/** Lab instance `instance`'s topology; throws PB_ERR_FLAG_VALUE for an instance that does not exist. */
export function labTopology(instance = 0): LabTopology {
  const topology = Number.isInteger(instance) ? TOPOLOGIES[instance] : undefined;
  if (!topology) {
    throw new PortbanditError('PB_ERR_FLAG_VALUE', `expected a lab instance 0-${LAB_INSTANCES - 1}, got ${instance}`, {
      where: 'lab instance',
    });
  }
  return topology;
}

function ipv4ToInt(ip: string): number {
  const parts = ip.split('.').map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) {
    throw new PortbanditError('PB_ERR_ADDRESS', `expected an IPv4 address, got ${JSON.stringify(ip)}`);
  }
  return ((parts[0]! << 24) | (parts[1]! << 16) | (parts[2]! << 8) | parts[3]!) >>> 0;
}

function intToIpv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

/** Whether an IPv4 address lies in 198.18.0.0/15, the only range the lab may use. */
export function isLabSafeAddress(ip: string): boolean {
  try {
    return ipv4ToInt(ip) >>> 17 === ipv4ToInt('198.18.0.0') >>> 17;
  } catch {
    return false;
  }
}

/** Throws PB_ERR_UNSAFE_TARGET unless `ip` is in 198.18.0.0/15. */
export function assertLabSafeAddress(ip: string, where: string): void {
  if (!isLabSafeAddress(ip)) {
    throw new PortbanditError('PB_ERR_UNSAFE_TARGET', `the lab only uses 198.18.0.0/15; refusing ${ip}`, { where });
  }
}

/** Lab host i's address: 198.18.1.10, 198.18.1.11, … (inside 198.18.0.0/16; instance 1: 198.18.129.10, … in 198.18.128.0/17). */
export function labHostAddress(index: number, instance = 0): string {
  if (!Number.isInteger(index) || index < 0 || index >= LAB.maxHosts) {
    throw new PortbanditError('PB_ERR_FLAG_VALUE', `expected a lab host index 0-${LAB.maxHosts - 1}, got ${index}`, { where: '--hosts' });
  }
  const ip = intToIpv4(ipv4ToInt(labTopology(instance).firstHost) + index);
  assertLabSafeAddress(ip, 'lab host');
  return ip;
}

export function labHostNs(index: number, instance = 0): string {
  return `${labTopology(instance).hostNsPrefix}${index}`;
}

/** masscan needs the adapter, its address and the router to use the lab instead of the default route. */
export function labMasscanRoute(instance = 0): { adapter: string; adapterIp: string; routerIp: string } {
  const t = labTopology(instance);
  return { adapter: t.rootLink, adapterIp: t.rootAddress, routerIp: t.gatewayAddress };
}
