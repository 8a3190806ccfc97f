/**
 * Hosts masscan cannot see. A host behind a firewall that drops scanners' SYNs (masscan's carry no
 * TCP options, which is what such rules key on) or that rate-limits SYN bursts shows masscan
 * nothing at all, while a kernel connect reaches its services. The agent finds out from a host's
 * ports last known open (`verify`): when masscan saw none of the host's ports and every one of
 * those it probed answered nmap's or the re-check's connect, masscan's silence on the host's other
 * ports says nothing, and they would be reported closed. Such a host's ports go to the connect
 * sweep: the rest of that round at once, and its preflights for a while after (the rounds of the
 * same visit that follow carry no ports known open to judge by: the first look does). After that
 * masscan gets its chance again, so a host whose firewall changed goes back to it.
 *
 * Lost packets can leave a host's one or two known ports unseen too; such a host is then swept
 * by connect for a while: slower than masscan, never a wrong result.
 *
 * A host such a firewall hides from its first visit on has no port known open to judge by. For
 * it, the first round of a visit (round 0) of a host masscan saw nothing of and that had nothing
 * open at its last visit gets a sight check: a connect to its few most likely ports
 * (`sightCheckPorts`, by nmap's open frequencies). One that accepts is evidence like a known port
 * that answers: masscan is blind there. A host that is down costs those few connects per visit
 * (their time-outs run in parallel with the other hosts'); `--masscan-sight-check 0` turns it off.
 */

/** How long a host masscan could not see has its preflights by connect: the rest of a visit. */
export const MASSCAN_BLIND_MS = 30 * 60_000;

/** Ports of a sight check by default (`ScanConfig.masscanSightCheck`). */
export const MASSCAN_SIGHT_CHECK_PORTS = 8;

/**
 * The `count` ports of `ports` most likely open, for a sight check: those of `likely` (the
 * coordinator's, the strategy's own order for the host) first, then the most frequent by nmap's
 * table (`byFrequency`, most frequent first, as PortCatalog has it), then the others in the order
 * given. Only ports of `ports`: whatever else `likely` names is never probed.
 */
export function sightCheckPorts(
  ports: readonly number[],
  count: number,
  byFrequency: ArrayLike<number> | undefined,
  likely: readonly number[] = [],
): number[] {
  if (count <= 0 || ports.length === 0) return [];
  if (ports.length <= count) return [...ports];
  const own = new Set(ports);
  const out: number[] = [];
  const taken = new Set<number>();
  const take = (p: number): void => {
    if (out.length < count && own.has(p) && !taken.has(p)) {
      taken.add(p);
      out.push(p);
    }
  };
  for (const p of likely) take(p);
  if (byFrequency !== undefined) for (let i = 0; i < byFrequency.length && out.length < count; i++) take(byFrequency[i]!);
  for (let i = 0; i < ports.length && out.length < count; i++) take(ports[i]!);
  return out;
}

/** At most this many hosts are remembered (the oldest go first), as the connect timers' estimates. */
const MAX_HOSTS = 65_536;

/** One host's evidence from a masscan run: its ports known open, confirmed now, and masscan's view of the host. */
export interface BlindEvidence {
  /** Ports open at the last visit that masscan probed and nmap or a connect found open now. */
  readonly known: number;
  /** Of those, the ones masscan did not see. */
  readonly missed: number;
  /** Ports of this host masscan saw open in the run (any, known or not). */
  readonly saw: number;
}

/** Whether a run was blind on a host: it saw nothing there, yet the ports known open answer a connect. */
export function masscanWasBlind(e: BlindEvidence): boolean {
  return e.saw === 0 && e.known > 0 && e.missed === e.known;
}

export class MasscanBlindHosts {
  /** ip -> until when its preflights go to the connect sweep (ms since the epoch), oldest first. */
  private readonly until = new Map<string, number>();

  constructor(private readonly memoryMs = MASSCAN_BLIND_MS) {}

  /** Remember `ip` as a host masscan cannot see, from `now` on. */
  mark(ip: string, now: number): void {
    this.until.delete(ip);
    this.until.set(ip, now + this.memoryMs);
    if (this.until.size > MAX_HOSTS) this.until.delete(this.until.keys().next().value!);
  }

  /** Whether `ip`'s preflight goes to the connect sweep at `now`. */
  has(ip: string, now: number): boolean {
    const until = this.until.get(ip);
    if (until === undefined) return false;
    if (until > now) return true;
    this.until.delete(ip);
    return false;
  }

  /** Hosts remembered (expired ones included until looked up). */
  get size(): number {
    return this.until.size;
  }
}
