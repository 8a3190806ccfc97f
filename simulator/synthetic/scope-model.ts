import type { PortCatalog } from '../../src/catalog/index.js';
import { MAX_PORT, deriveRng, type Rng } from '../../src/core/index.js';
import { syntheticSubnet } from './address.js';
import type { ResolvedGenerateOptions } from './options.js';
import { drawBetween, drawWeighted, frequencySampler, type FrequencySampler } from './port-sampler.js';
import { VERSION_1_ROLES, roles, type ProfileSpec, type RoleName, type RoleSpec } from './profiles.js';

/** "Until the end of the scope": epochs are 16-bit, MAX_SYNTHETIC_EPOCHS is far below this. */
export const NEVER = 0xffff;

/** Hosts per subnet: the org long tail, the rollout and the role are per /24. */
export const SUBNET_SIZE = 256;

/** Host kinds, as stored in ScopeModel.hostKind. */
export const HostKind = { live: 0, dead: 1, pseudo: 2 } as const;

/** What one /24 of the scope plays: its role (tag) and its own long tail. */
export interface SubnetPlan {
  readonly role: RoleName;
  readonly tags: readonly string[];
  /** The subnet's own tail ports and the share of its live hosts running each. */
  readonly tailPorts: readonly number[];
  readonly tailShares: readonly number[];
  /** SSH runs on 2222 instead of 22 in this subnet. */
  readonly altSsh: boolean;
}

/** The new service rolled out mid-way: `port` on the live hosts of `subnet` from `epoch` on. */
export interface RolloutPlan {
  readonly port: number;
  readonly subnetIndex: number;
  readonly subnet: string;
  readonly epoch: number;
  readonly hostShare: number;
}

/**
 * The whole scope's ground truth, compactly: per host a run of service slots (port, first
 * epoch, end epoch exclusive), sorted by port. No object per port, so a /15 fits in a few MB.
 */
export interface ScopeModel {
  readonly options: ResolvedGenerateOptions;
  readonly subnets: readonly SubnetPlan[];
  readonly rollout: RolloutPlan | null;
  /** HostKind per host. */
  readonly hostKind: Uint8Array;
  /** Host h's slots are [slotStart[h], slotStart[h + 1]). */
  readonly slotStart: Uint32Array;
  readonly slotPort: Uint16Array;
  readonly slotFrom: Uint16Array;
  readonly slotTo: Uint16Array;
}

/** Ports that any role's bundles use; the rollout port avoids them so it is new everywhere. */
const bundlePorts = new Set<number>(VERSION_1_ROLES.flatMap((name) => (roles[name] as RoleSpec).bundles.flatMap((b) => b.ports)));

/** Alternate application ports an organisation likes to put its own services on. */
const ORG_APP_PORTS = [8443, 4443, 9443, 8081, 8888, 31337, 10443, 7001, 8009, 9090, 3000, 5001, 8181, 8880] as const;

function isOddHigh(port: number, catalog: PortCatalog): boolean {
  const rank = catalog.rank(port);
  return rank < 0 || rank >= 1000;
}

/** The rollout of a scope (or null when the profile has none); depends only on the seed and sizes. */
export function planRollout(options: ResolvedGenerateOptions, catalog: PortCatalog): RolloutPlan | null {
  const spec = options.profile.rollout;
  if (!spec) return null;
  const rng = deriveRng(options.seed, 'rollout');
  let port: number;
  do port = drawBetween(20000, 60000, rng);
  while (catalog.rank(port) >= 0 || bundlePorts.has(port));
  const subnetCount = Math.ceil(options.hosts / SUBNET_SIZE);
  const subnetIndex = rng.int(subnetCount);
  const epoch = Math.floor(options.epochs / 2);
  if (spec.source === 'elsewhere') {
    // A port another subnet already runs (its own tail), new to the rollout subnet. Subnet plans
    // of this mode do not depend on the rollout, so they can be drawn first.
    const own = planSubnet(options, subnetIndex, null, catalog).tailPorts;
    for (let k = 1; k < subnetCount; k++) {
      const other = planSubnet(options, (subnetIndex + k) % subnetCount, null, catalog).tailPorts.find((p) => !own.includes(p));
      if (other !== undefined) return { port: other, subnetIndex, subnet: syntheticSubnet(subnetIndex), epoch, hostShare: spec.hostShare };
    }
  }
  return { port, subnetIndex, subnet: syntheticSubnet(subnetIndex), epoch, hostShare: spec.hostShare };
}

function drawTailPort(profile: ProfileSpec, index: number, rng: Rng, catalog: PortCatalog): number {
  const pool = profile.tail!.pool;
  if (pool === 'org') {
    // The first tail port is always odd and high, so every tail subnet has one no top-1000 list holds.
    if (index > 0 && rng.next() < 0.5) return ORG_APP_PORTS[rng.int(ORG_APP_PORTS.length)]!;
    let port: number;
    do port = drawBetween(20000, 60000, rng);
    while (!isOddHigh(port, catalog));
    return port;
  }
  if (rng.next() < 0.5 && catalog.byFrequency.length > 1000)
    return catalog.byFrequency[drawBetween(1000, catalog.byFrequency.length - 1, rng)]!;
  let port: number;
  do port = drawBetween(1024, MAX_PORT, rng);
  while (catalog.rank(port) >= 0);
  return port;
}

/** The plan of subnet `s`: derived from the seed and `s` alone. */
export function planSubnet(options: ResolvedGenerateOptions, s: number, rollout: RolloutPlan | null, catalog: PortCatalog): SubnetPlan {
  const { profile } = options;
  const rng = deriveRng(options.seed, 'subnet', s);
  const names = Object.keys(profile.roles) as RoleName[];
  const role =
    names[
      drawWeighted(
        names.map((n) => profile.roles[n]!),
        rng,
      )
    ]!;
  const tailPorts: number[] = [];
  const tailShares: number[] = [];
  let altSsh = false;
  const tail = profile.tail;
  if (tail && rng.next() < tail.subnetShare) {
    const count = drawBetween(tail.ports[0], tail.ports[1], rng);
    for (let i = 0; i < count; i++) {
      let port: number;
      let tries = 0;
      do port = drawTailPort(profile, i, rng, catalog);
      while (
        ((profile.rollout?.source !== 'elsewhere' && port === rollout?.port) || tailPorts.includes(port) || bundlePorts.has(port)) &&
        ++tries < 50
      );
      if (tries >= 50) continue;
      tailPorts.push(port);
      tailShares.push(tail.hostShare[0] + rng.next() * (tail.hostShare[1] - tail.hostShare[0]));
    }
  }
  if (tail && rng.next() < tail.altSshSubnetShare) altSsh = true;
  return Object.freeze({ role, tags: Object.freeze([role]), tailPorts, tailShares, altSsh });
}

/** Number of further epochs a service survives: geometric with per-epoch loss `down`. */
function drawLifetime(down: number, rng: Rng): number {
  if (down <= 0) return NEVER;
  const u = rng.next();
  return Math.floor(Math.log1p(-u) / Math.log1p(-down));
}

/** Growable Uint16Array column. */
class U16Column {
  data = new Uint16Array(1 << 16);
  length = 0;
  push(v: number): void {
    if (this.length === this.data.length) {
      const next = new Uint16Array(this.data.length * 2);
      next.set(this.data);
      this.data = next;
    }
    this.data[this.length++] = v;
  }
  view(): Uint16Array {
    return this.data.slice(0, this.length);
  }
}

/** Draws the services of live hosts of one profile. */
class HostDrawer {
  private readonly sampler: FrequencySampler;
  private readonly bitmap = new Uint8Array(MAX_PORT + 1);

  constructor(
    private readonly options: ResolvedGenerateOptions,
    catalog: PortCatalog,
  ) {
    this.sampler = frequencySampler(catalog);
  }

  /** A live host's ports at epoch 0 (a non-empty set, order unspecified). */
  drawBase(role: RoleSpec, subnet: SubnetPlan, rng: Rng): number[] {
    const { profile } = this.options;
    let ports: number[] = [];
    for (let attempt = 0; attempt < 20 && ports.length === 0; attempt++) {
      ports = [];
      for (const b of role.bundles) {
        if (rng.next() >= b.p * profile.bundleScale) continue;
        for (const p of b.ports) if (b.keep >= 1 || rng.next() < b.keep) ports.push(p);
      }
      const extra = drawWeighted(role.extraCounts, rng);
      for (let i = 0; i < extra; i++) {
        // Without replacement: redraw a port the host already has (rarely more than once).
        for (let tries = 0; tries < 50; tries++) {
          const p = this.sampler.draw(rng);
          if (!ports.includes(p)) {
            ports.push(p);
            break;
          }
        }
      }
    }
    if (ports.length === 0) ports.push(this.sampler.draw(rng));
    if (subnet.altSsh && ports.includes(22) && rng.next() < profile.tail!.altSshHostShare) {
      ports[ports.indexOf(22)] = 2222;
    }
    for (let i = 0; i < subnet.tailPorts.length; i++) {
      if (rng.next() < subnet.tailShares[i]!) {
        const p = subnet.tailPorts[i]!;
        if (!ports.includes(p)) ports.push(p);
      }
    }
    return ports;
  }

  /** A service that appears later on a live host: the subnet's tail, the role's bundles, or nmap's table. */
  drawArrival(role: RoleSpec, subnet: SubnetPlan, rng: Rng): number {
    const u = rng.next();
    if (subnet.tailPorts.length > 0 && u < 0.25) return subnet.tailPorts[rng.int(subnet.tailPorts.length)]!;
    if (role.bundles.length > 0 && u < 0.625) {
      const b =
        role.bundles[
          drawWeighted(
            role.bundles.map((x) => x.p),
            rng,
          )
        ]!;
      return b.ports[rng.int(b.ports.length)]!;
    }
    return this.sampler.draw(rng);
  }

  /** A pseudo-service host's ports: a contiguous block or a scatter, ascending, never `avoid`. */
  drawPseudo(rng: Rng, avoid: number): Uint16Array {
    const [min, max] = this.options.profile.pseudoPorts;
    const m = drawBetween(min, max, rng);
    const out: number[] = [];
    if (rng.next() < 0.5) {
      const start = drawBetween(1, MAX_PORT - m + 1, rng);
      for (let p = start; p < start + m; p++) if (p !== avoid) out.push(p);
      return Uint16Array.from(out);
    }
    const bitmap = this.bitmap;
    while (out.length < m) {
      const p = 1 + rng.int(MAX_PORT);
      if (p === avoid || bitmap[p]) continue;
      bitmap[p] = 1;
      out.push(p);
    }
    for (const p of out) bitmap[p] = 0;
    return Uint16Array.from(out).sort();
  }
}

/** Which host of each stratum of 1/pseudoShare hosts is the pseudo-service host. */
function pseudoSlot(seed: string, block: number, stride: number): number {
  return deriveRng(seed, 'pseudo', block).int(stride);
}

/**
 * Build the scope's ground truth. Every host's services come from RNGs derived from the seed
 * and the host's index (and subnet plans from the subnet's index), so the result does not
 * depend on the order anything is computed in.
 */
export function buildScopeModel(options: ResolvedGenerateOptions, catalog: PortCatalog): ScopeModel {
  const { profile, hosts, epochs, seed } = options;
  const rollout = planRollout(options, catalog);
  const subnets: SubnetPlan[] = [];
  for (let s = 0; s * SUBNET_SIZE < hosts; s++) subnets.push(planSubnet(options, s, rollout, catalog));
  const drawer = new HostDrawer(options, catalog);
  const hostKind = new Uint8Array(hosts);
  const slotStart = new Uint32Array(hosts + 1);
  const port = new U16Column();
  const from = new U16Column();
  const to = new U16Column();
  const stride = profile.pseudoShare > 0 ? Math.max(1, Math.round(1 / profile.pseudoShare)) : 0;
  let block = -1;
  let pseudoAt = -1;
  // Scratch for one host's slots, encoded port * 2^32 + from * 2^16 + to so one numeric sort orders them.
  const scratch: number[] = [];
  const addSlot = (p: number, f: number, t: number): void => {
    if (f < epochs) scratch.push(p * 2 ** 32 + f * 2 ** 16 + Math.min(t, NEVER));
  };

  for (let h = 0; h < hosts; h++) {
    slotStart[h] = port.length;
    const subnet = subnets[Math.floor(h / SUBNET_SIZE)]!;
    const rng = deriveRng(seed, 'host', h);
    if (stride > 0 && Math.floor(h / stride) !== block) {
      block = Math.floor(h / stride);
      pseudoAt = block * stride + pseudoSlot(seed, block, stride);
    }
    if (h === pseudoAt) {
      hostKind[h] = HostKind.pseudo;
      for (const p of drawer.drawPseudo(rng, rollout?.port ?? -1)) {
        port.push(p);
        from.push(0);
        to.push(NEVER);
      }
      continue;
    }
    if (rng.next() < profile.deadShare) {
      hostKind[h] = HostKind.dead;
      continue;
    }
    const role = roles[subnet.role];
    const base = drawer.drawBase(role, subnet, rng);
    const inRollout = rollout !== null && Math.floor(h / SUBNET_SIZE) === rollout.subnetIndex && rng.next() < rollout.hostShare;
    // Churn has its own stream so a scope's first epochs do not change when more epochs are asked for.
    const churn = deriveRng(seed, 'churn', h);
    scratch.length = 0;
    base.sort((a, b) => a - b);
    for (const p of base) addSlot(p, 0, 1 + drawLifetime(profile.churn.down, churn));
    for (let e = 1; e < epochs; e++) {
      if (churn.next() >= profile.churn.up) continue;
      const p = drawer.drawArrival(role, subnet, churn);
      addSlot(p, e, e + 1 + drawLifetime(profile.churn.down, churn));
    }
    if (inRollout) addSlot(rollout.port, rollout.epoch, NEVER);
    scratch.sort((a, b) => a - b);
    for (const code of scratch) {
      port.push(Math.floor(code / 2 ** 32));
      from.push(Math.floor(code / 2 ** 16) & 0xffff);
      to.push(code & 0xffff);
    }
  }
  slotStart[hosts] = port.length;
  return { options, subnets, rollout, hostKind, slotStart, slotPort: port.view(), slotFrom: from.view(), slotTo: to.view() };
}

/** Open ports of host h at epoch e, ascending, without duplicates. */
export function openPortsAt(model: ScopeModel, h: number, e: number): number[] {
  const out: number[] = [];
  const { slotPort, slotFrom, slotTo } = model;
  let last = -1;
  for (let i = model.slotStart[h]!, end = model.slotStart[h + 1]!; i < end; i++) {
    const p = slotPort[i]!;
    if (p !== last && slotFrom[i]! <= e && e < slotTo[i]!) {
      out.push(p);
      last = p;
    }
  }
  return out;
}
