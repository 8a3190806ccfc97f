import { PortbanditError } from '../../src/core/index.js';

/**
 * Synthetic scope profiles. A profile says which roles (scope tags) its /24 subnets play, how
 * a host of each role picks its services, and how much dead, pseudo-service, long-tail, churn
 * and rollout behaviour the scope has. Calibrated to /work/shared/research.md; documented in
 * docs/profiles.md (generated from this file by `portbandit scope profiles --markdown`).
 */

/** Ports that tend to be open together on one host; the whole bundle is drawn at once. */
export interface Bundle {
  readonly ports: readonly number[];
  /** Probability that a live host of the role runs the bundle. */
  readonly p: number;
  /** Probability that each member of a drawn bundle is actually open (1 = all together). */
  readonly keep: number;
}

/** How a host of one role (one scope tag) picks its ordinary services. */
export interface RoleSpec {
  readonly bundles: readonly Bundle[];
  /**
   * How many extra services a live host draws from nmap's open-frequency distribution:
   * weights for 0, 1, 2, ... services (normalised when used).
   */
  readonly extraCounts: readonly number[];
}

/**
 * Censys: ~60% of responsive hosts have one open port; the rest a heavy tail. P(1) = 0.6,
 * P(k) proportional to k^-2.5 for k = 2..40 holding the other 0.4.
 */
const censysCounts: readonly number[] = (() => {
  const out = [0, 0.6];
  let tail = 0;
  for (let k = 2; k <= 40; k++) tail += k ** -2.5;
  for (let k = 2; k <= 40; k++) out.push((0.4 * k ** -2.5) / tail);
  return out;
})();

/** Roles of hosts: the scope tags a generated observation carries. */
export const roles = {
  /** Internet-like: nothing but nmap's frequencies and Censys' count distribution. */
  internet: { bundles: [], extraCounts: censysCounts },
  /** Web DMZ: 80 and 443 together, alternate web ports, some SSH, mail and DNS. */
  dmz: {
    bundles: [
      { ports: [80, 443], p: 0.75, keep: 0.95 },
      { ports: [8080, 8443], p: 0.2, keep: 0.8 },
      { ports: [22], p: 0.35, keep: 1 },
      { ports: [25, 465, 587], p: 0.05, keep: 0.7 },
      { ports: [53], p: 0.05, keep: 1 },
      { ports: [21], p: 0.04, keep: 1 },
    ],
    extraCounts: [0.65, 0.25, 0.1],
  },
  /** Office desktops and file servers: the Windows trio, RDP, VNC, WinRM, printers. */
  office: {
    bundles: [
      { ports: [135, 139, 445], p: 0.85, keep: 0.97 },
      { ports: [3389], p: 0.45, keep: 1 },
      { ports: [5900], p: 0.1, keep: 1 },
      { ports: [5985], p: 0.15, keep: 1 },
      { ports: [80, 443, 515, 631, 9100], p: 0.04, keep: 0.7 },
    ],
    extraCounts: [0.7, 0.25, 0.05],
  },
  /** Datacenter servers: SSH, databases, caches, search, etcd, kubelet, exporters. */
  datacenter: {
    bundles: [
      { ports: [22], p: 0.9, keep: 1 },
      { ports: [3306], p: 0.15, keep: 1 },
      { ports: [5432], p: 0.15, keep: 1 },
      { ports: [6379], p: 0.12, keep: 1 },
      { ports: [9200, 9300], p: 0.08, keep: 0.9 },
      { ports: [27017], p: 0.08, keep: 1 },
      { ports: [2379, 2380], p: 0.05, keep: 0.95 },
      { ports: [10250, 10256], p: 0.15, keep: 0.9 },
      { ports: [9100], p: 0.35, keep: 1 },
      { ports: [80, 443], p: 0.2, keep: 0.8 },
      { ports: [8080], p: 0.1, keep: 1 },
    ],
    extraCounts: [0.7, 0.2, 0.1],
  },
  /** IoT: telnet, cameras (RTSP, Dahua 37777, Hikvision 8000), MQTT, UPnP, small web UIs. */
  iot: {
    bundles: [
      { ports: [80], p: 0.6, keep: 1 },
      { ports: [23], p: 0.3, keep: 1 },
      { ports: [554, 8000], p: 0.25, keep: 0.7 },
      { ports: [1883, 8883], p: 0.15, keep: 0.6 },
      { ports: [49152], p: 0.15, keep: 1 },
      { ports: [37777], p: 0.1, keep: 1 },
      { ports: [443], p: 0.2, keep: 1 },
      { ports: [5000], p: 0.08, keep: 1 },
    ],
    extraCounts: [0.85, 0.15],
  },
  /** Developer and build hosts: SSH, dev web servers (3000, 5000, 8000, 8080, 8888, 9000), local databases. */
  dev: {
    bundles: [
      { ports: [22], p: 0.8, keep: 1 },
      { ports: [3000], p: 0.25, keep: 1 },
      { ports: [8080], p: 0.2, keep: 1 },
      { ports: [5000], p: 0.15, keep: 1 },
      { ports: [8000], p: 0.15, keep: 1 },
      { ports: [8888], p: 0.1, keep: 1 },
      { ports: [9000], p: 0.1, keep: 1 },
      { ports: [5432], p: 0.1, keep: 1 },
      { ports: [6379], p: 0.08, keep: 1 },
    ],
    extraCounts: [0.75, 0.2, 0.05],
  },
} as const satisfies Record<string, RoleSpec>;

/** The roles of generator version 1, whose bundle ports tail and rollout ports avoid (kept fixed so older profiles draw the same scopes). */
export const VERSION_1_ROLES: readonly RoleName[] = ['internet', 'dmz', 'office', 'datacenter', 'iot'];

export type RoleName = keyof typeof roles;

/** An organisation's own long tail: ports shared by most hosts of a /24. */
export interface TailSpec {
  /** Share of /24 subnets that have their own tail ports. */
  readonly subnetShare: number;
  /** Number of tail ports such a subnet has: [min, max], inclusive. */
  readonly ports: readonly [number, number];
  /** Share of a subnet's live hosts that run each tail port: uniform in [min, max]. */
  readonly hostShare: readonly [number, number];
  /**
   * Where tail ports come from: `org` = first an odd high port (20000-60000, outside nmap's
   * top 1,000), then half alternate app ports (8443, 31337, ...) and half odd high ports;
   * `lowrank` = half ports nmap ranks 1,000th or lower, half ports nmap has no figure for.
   */
  readonly pool: 'org' | 'lowrank';
  /** Share of subnets that run SSH on 2222 instead of 22. */
  readonly altSshSubnetShare: number;
  /** In such a subnet, share of hosts with SSH whose SSH is on 2222. */
  readonly altSshHostShare: number;
}

/** A synthetic scope profile. */
export interface ProfileSpec {
  readonly description: string;
  /** Roles of the /24 subnets and their weights: each subnet plays one role (its hosts' tag). */
  readonly roles: Readonly<Partial<Record<RoleName, number>>>;
  /** Multiplies every bundle's probability (longtail weakens the popular services). */
  readonly bundleScale: number;
  /** Share of non-pseudo hosts with nothing open, every epoch. */
  readonly deadShare: number;
  /** Share of hosts that answer on very many ports (SYN proxies), stratified: one per 1/share hosts. */
  readonly pseudoShare: number;
  /** Open ports on a pseudo-service host: uniform in [min, max]. */
  readonly pseudoPorts: readonly [number, number];
  readonly tail: TailSpec | null;
  /** Per epoch: probability that a service disappears; probability that a live host gains one. */
  readonly churn: { readonly down: number; readonly up: number };
  /**
   * A service rolled out to a whole /24 at epoch floor(E/2): by default (`source` 'new') on an
   * odd high port no list knows; with `source` 'elsewhere', one of another subnet's own tail
   * ports (the organisation deploys a service it already runs elsewhere).
   */
  readonly rollout: { readonly hostShare: number; readonly source?: 'new' | 'elsewhere' } | null;
}

const orgTail: TailSpec = {
  subnetShare: 0.75,
  ports: [1, 3],
  hostShare: [0.7, 0.95],
  pool: 'org',
  altSshSubnetShare: 0.3,
  altSshHostShare: 0.9,
};

/** The enterprise shape, reused by the single-tag profiles. */
function enterpriseLike(description: string, mix: Readonly<Partial<Record<RoleName, number>>>): ProfileSpec {
  return {
    description,
    roles: mix,
    bundleScale: 1,
    deadShare: 0.25,
    pseudoShare: 0.002,
    pseudoPorts: [1010, 1500],
    tail: orgTail,
    churn: { down: 0.02, up: 0.03 },
    rollout: { hostShare: 1 },
  };
}

/** Every profile, by name. */
export const profiles = {
  internet: {
    description: "Internet-like: services drawn from nmap's open frequencies, Censys' count distribution, no long tail, no co-occurrence.",
    roles: { internet: 1 },
    bundleScale: 1,
    deadShare: 0.3,
    // Censys: 0.2% of hosts (those with >100 ports) hold ~40% of services. The simulator calls a
    // host pseudo above 1,000 open ports, so here 0.1% of hosts with 1,010-1,200 ports hold ~42%.
    pseudoShare: 0.001,
    pseudoPorts: [1010, 1200],
    tail: null,
    churn: { down: 0.02, up: 0.02 },
    rollout: null,
  },
  enterprise: enterpriseLike(
    'Enterprise (the default): /24s of DMZ, office, datacenter and IoT hosts, an org long tail, co-occurrence, churn, a rollout, pseudo and dead hosts.',
    {
      dmz: 0.2,
      office: 0.4,
      datacenter: 0.25,
      iot: 0.15,
    },
  ),
  longtail: {
    description:
      'Long tail: most services on ports nmap ranks low (or not at all), shared per /24; popular services weakened. Fixed top-k lists do badly here.',
    roles: { dmz: 0.2, office: 0.3, datacenter: 0.4, iot: 0.1 },
    bundleScale: 0.3,
    deadShare: 0.25,
    pseudoShare: 0.002,
    pseudoPorts: [1010, 1500],
    tail: { subnetShare: 1, ports: [3, 6], hostShare: [0.6, 0.95], pool: 'lowrank', altSshSubnetShare: 0.8, altSshHostShare: 0.95 },
    churn: { down: 0.02, up: 0.03 },
    rollout: { hostShare: 1 },
  },
  orgtail: {
    description:
      'Organisation long tail: 16-/24-sized scopes of five host kinds (tags), every /24 with 1-3 ports of its own on 55-90% of its live hosts, 45% dead hosts, a few pseudo-service hosts, churn, and a mid-way rollout of a port another subnet already runs.',
    roles: { dmz: 0.2, office: 0.3, datacenter: 0.25, iot: 0.1, dev: 0.15 },
    bundleScale: 1,
    deadShare: 0.45,
    pseudoShare: 0.003,
    pseudoPorts: [1010, 1500],
    tail: { subnetShare: 1, ports: [1, 3], hostShare: [0.55, 0.9], pool: 'org', altSshSubnetShare: 0.3, altSshHostShare: 0.9 },
    churn: { down: 0.02, up: 0.03 },
    rollout: { hostShare: 1, source: 'elsewhere' },
  },
  dmz: enterpriseLike('Web DMZ only: 80/443 heavy, alternate web ports, the org long tail.', { dmz: 1 }),
  office: enterpriseLike('Office only: 135/139/445, 3389, 5900, 5985.', { office: 1 }),
  datacenter: enterpriseLike('Datacenter only: SSH, databases, caches, search, etcd, kubelet.', { datacenter: 1 }),
  iot: enterpriseLike('IoT only: telnet, cameras, MQTT, UPnP, small web UIs.', { iot: 1 }),
} as const satisfies Record<string, ProfileSpec>;

export type ProfileName = keyof typeof profiles;

/** The default profile: the scope issue 3's headline is measured on. */
export const DEFAULT_PROFILE: ProfileName = 'enterprise';

/** Names of every profile, in registry order. */
export const profileNames = Object.keys(profiles) as ProfileName[];

/** True when `name` is a registered profile. */
export function isProfileName(name: string): name is ProfileName {
  return Object.hasOwn(profiles, name);
}

/** Look a profile up by name; throws PB_ERR_UNKNOWN_PROFILE listing the known names. */
export function getProfile(name: string, where = 'profile'): ProfileSpec {
  if (!isProfileName(name)) {
    throw new PortbanditError(
      'PB_ERR_UNKNOWN_PROFILE',
      `unknown profile ${JSON.stringify(name)}; expected one of ${profileNames.join(', ')}`,
      { where },
    );
  }
  return profiles[name];
}
