import { PortbanditError, isPort, createCidrMatcher } from '../src/core/index.js';
import type { LoadedRecording } from '../src/recording/index.js';
import type { RolloutDetection } from './types.js';

/** A service rolled out to a whole subnet at one epoch (the generator's `source.rollout`). */
export interface Rollout {
  readonly port: number;
  readonly subnet: string;
  readonly epoch: number;
}

/**
 * Read `header.source.rollout` when present: `{port, subnet | prefix, epoch}`. Returns null
 * when the recording says nothing about a rollout; throws PB_ERR_RECORDING when it says
 * something malformed.
 */
export function readRollout(recording: LoadedRecording): Rollout | null {
  const raw = recording.header.source?.rollout;
  if (raw === undefined || raw === null) return null;
  const where = `${recording.header.name}: header source.rollout`;
  const r = (Array.isArray(raw) ? raw[0] : raw) as Record<string, unknown> | undefined;
  if (r === undefined || typeof r !== 'object' || r === null) {
    throw new PortbanditError('PB_ERR_RECORDING', 'expected an object {port, subnet, epoch}', { where });
  }
  const subnet = r.subnet ?? r.prefix ?? r.cidr;
  if (!isPort(r.port) || typeof subnet !== 'string' || typeof r.epoch !== 'number' || !Number.isInteger(r.epoch) || r.epoch < 0) {
    throw new PortbanditError('PB_ERR_RECORDING', `expected {port: 1-65535, subnet: CIDR, epoch: integer >= 0}, got ${JSON.stringify(r)}`, {
      where,
    });
  }
  return { port: r.port, subnet, epoch: r.epoch };
}

/** Tracks, per rollout host, the first epoch at which the strategy found the rollout port. */
export class RolloutTracker {
  readonly rollout: Rollout;
  private readonly inSubnet: Uint8Array;
  private readonly firstFound: Int32Array;
  private readonly isRolloutHost: Uint8Array;
  private hosts = 0;
  private knownEpoch = -1;

  constructor(rollout: Rollout, hostIp: readonly string[]) {
    this.rollout = rollout;
    const match = createCidrMatcher(rollout.subnet, 'source.rollout.subnet');
    this.inSubnet = Uint8Array.from(hostIp, (ip) => (match(ip) ? 1 : 0));
    this.firstFound = new Int32Array(hostIp.length).fill(-1);
    this.isRolloutHost = new Uint8Array(hostIp.length);
  }

  /**
   * One non-pseudo host-epoch of any host of the scope: `trulyOpen` is whether the rollout port is
   * open in truth, `found` the ports the strategy found open.
   */
  update(host: number, epoch: number, trulyOpen: boolean, found: readonly number[]): void {
    if ((this.knownEpoch < 0 || epoch < this.knownEpoch) && found.includes(this.rollout.port)) this.knownEpoch = epoch;
    if (this.inSubnet[host] === 0 || epoch < this.rollout.epoch) return;
    if (epoch === this.rollout.epoch && trulyOpen && this.isRolloutHost[host] === 0) {
      this.isRolloutHost[host] = 1;
      this.hosts++;
    }
    if (this.isRolloutHost[host] === 0 || this.firstFound[host]! >= 0) return;
    if (found.includes(this.rollout.port)) this.firstFound[host] = epoch;
  }

  summary(): RolloutDetection {
    const within = [0, 0, 0];
    let never = 0;
    for (let h = 0; h < this.firstFound.length; h++) {
      if (this.isRolloutHost[h] === 0) continue;
      const f = this.firstFound[h]!;
      if (f < 0) {
        never++;
        continue;
      }
      const delay = f - this.rollout.epoch;
      for (let k = delay; k < within.length; k++) within[k]!++;
    }
    const share = (n: number): number | null => (this.hosts === 0 ? null : n / this.hosts);
    return {
      port: this.rollout.port,
      subnet: this.rollout.subnet,
      epoch: this.rollout.epoch,
      hosts: this.hosts,
      within0: share(within[0]!),
      within1: share(within[1]!),
      within2: share(within[2]!),
      never,
      knownEpoch: this.knownEpoch < 0 ? null : this.knownEpoch,
    };
  }
}
