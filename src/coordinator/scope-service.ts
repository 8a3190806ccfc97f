import { canonicalIp, PortbanditError, type Logger } from '../core/index.js';
import type { ScopeListName, Store } from '../store/index.js';
import { parseAddress } from './address.js';
import { AddressSpace, type ScopeItem } from './address-space.js';
import type { CycleProgress } from './cycle.js';
import type { CoordinatorMetrics } from './metrics.js';
import { type NameEntry, type NameResolution, type NameResolver, asDnsName, resolveNameEntries } from './names.js';
import { type ScopeLine, normalizeScopeLine } from './scope-file.js';

/** What `resolveNamesIfDue` needs to know of the cycle. */
export interface CycleBoundary {
  readonly atEnd: boolean;
  progress(): CycleProgress;
}

/**
 * The scope service: scope and blocklist as stored, the address space they make (scope minus
 * blocklist), and the scope's DNS names with the addresses they resolved to. Edits go to the
 * store and are reloaded at once; edits by other processes are picked up by `reload`.
 */
export class ScopeService {
  private space: AddressSpace = AddressSpace.EMPTY;
  private items: ScopeItem[] = [];
  private version = -1;
  /** Scope entries by name, and the addresses they resolved to last. */
  private nameEntries: NameEntry[] = [];
  private nameResolution: NameResolution | undefined;
  /** Address items of the scope and blocklist (without the names' addresses). */
  private addressItems: ScopeItem[] = [];
  /** The cycle (number and start) whose end the names were last resolved at. */
  private namesResolvedFor = '';
  private resolvingNames: Promise<void> | undefined;
  /** Runs after every reload that changed the scope (rate-stated budgets follow its size). */
  onReload: (() => Promise<void>) | undefined;

  /**
   * `resolver`: resolves the scope's DNS names; undefined when this process does not resolve
   * (the CLI on a data directory). `shared`: other coordinators edit the same store.
   */
  constructor(
    private readonly store: Store,
    private readonly metrics: Pick<CoordinatorMetrics, 'scopeAddresses'>,
    private readonly log: Logger,
    private readonly now: () => number,
    private readonly shared: boolean,
    private readonly resolver?: NameResolver,
  ) {}

  /** Load scope and blocklist when the store's version moved (or always, `force`); true when reloaded. */
  async reload(force = false): Promise<boolean> {
    const version = await this.store.getScopeVersion();
    if (!force && version === this.version) return false;
    const [scope, block] = await Promise.all([this.store.listScope('scope'), this.store.listScope('blocklist')]);
    // DNS names (scope only) are resolved apart; their addresses join the items (resolveNames).
    const isName = (range: string) => asDnsName(range) === range;
    this.addressItems = [
      ...scope.entries.filter((e) => !isName(e.range)).map((e) => ({ target: e.range, tags: e.tags, blocklist: false })),
      ...block.entries.filter((e) => !isName(e.range)).map((e) => ({ target: e.range, tags: e.tags, blocklist: true })),
    ];
    this.nameEntries = scope.entries.filter((e) => isName(e.range)).map((e) => ({ name: e.range, tags: e.tags }));
    if (this.resolvesNames) await this.resolveNames();
    else this.rebuildItems();
    // The version read before the lists: an edit committed between the two lists (which the
    // first may have missed) then makes the next reload read again. The lists' own, later
    // versions could hide it.
    this.version = version;
    this.metrics.scopeAddresses.set(Number(this.space.size));
    if (this.onReload) await this.onReload();
    return true;
  }

  /** The current address space (scope minus blocklist). */
  get addressSpace(): AddressSpace {
    return this.space;
  }

  /** The scope items: address entries, blocklist, and one item per address a name resolved to. */
  get scopeItems(): readonly ScopeItem[] {
    return this.items;
  }

  /** Add or update entries of the scope or blocklist. */
  async add(list: ScopeListName, lines: readonly ScopeLine[]): Promise<number> {
    refuseNamesInBlocklist(list, lines);
    const version = await this.store.addScopeEntries(list, lines, this.now());
    await this.reload(true);
    return version;
  }

  async remove(list: ScopeListName, ranges: readonly string[]): Promise<{ removed: number; version: number }> {
    const normalized = ranges.map((r, i) => normalizeScopeLine(r, [], `ranges[${i}]`).range);
    const out = await this.store.removeScopeEntries(list, normalized);
    await this.reload(true);
    return out;
  }

  async replace(list: ScopeListName, lines: readonly ScopeLine[]): Promise<number> {
    refuseNamesInBlocklist(list, lines);
    const version = await this.store.replaceScope(list, lines, this.now());
    await this.reload(true);
    return version;
  }

  /**
   * `lookup`, but a shared store's scope may have been edited through another coordinator since
   * this one's last sweep: a miss re-checks the scope version (one query) before it counts.
   */
  async lookupCurrent(ip: string): Promise<{ ip: string; tags: readonly string[] } | undefined> {
    const hit = this.lookup(ip);
    if (hit || !this.shared) return hit;
    // Looked up again whether this call reloaded or not: a reload running meanwhile (the sweep's)
    // may have brought the address in, and then this one finds the version current and returns
    // false. (Returning the first miss then dropped a queued cycle address as "left the scope":
    // one address of a shared cycle never visited.)
    await this.reload();
    return this.lookup(ip);
  }

  /** Tags of an in-scope address, or undefined when it is outside the scope (or blocklisted). */
  lookup(ip: string): { ip: string; tags: readonly string[] } | undefined {
    let parsed;
    try {
      parsed = parseAddress(ip);
    } catch {
      return undefined;
    }
    const seg = this.space.find(parsed.family, parsed.value);
    return seg ? { ip: normalizeIp(ip), tags: seg.tags } : undefined;
  }

  // ------------------------------------------------------------------ targets by name

  /** True when this process resolves the scope's names and the scope has some. */
  get resolvesNames(): boolean {
    return this.resolver !== undefined && this.nameEntries.length > 0;
  }

  private rebuildItems(): void {
    const named: ScopeItem[] = [];
    for (const e of this.nameEntries)
      for (const ip of this.nameResolution?.addresses.get(e.name) ?? []) named.push({ target: ip, tags: e.tags, blocklist: false });
    this.items = [...this.addressItems, ...named];
    this.space = AddressSpace.build(this.items);
  }

  /** Resolve every name of the scope now (one resolution at a time) and rebuild the address space. */
  async resolveNames(): Promise<void> {
    // One at a time; a caller that arrives during one resolves again (the names may have changed).
    while (this.resolvingNames) await this.resolvingNames;
    this.resolvingNames = (async () => {
      try {
        const resolver = this.resolver!;
        this.nameResolution = await resolveNameEntries(this.nameEntries, resolver, this.nameResolution, (name, problem) =>
          this.log.warn({ name, resolver: resolver.description }, `scope name ${name}: ${problem}`),
        );
        this.rebuildItems();
        const count = [...this.nameResolution.addresses.values()].reduce((n, ips) => n + ips.length, 0);
        this.log.info({ names: this.nameEntries.length, addresses: count, resolver: resolver.description }, 'scope names resolved');
      } finally {
        this.resolvingNames = undefined;
      }
    })();
    return this.resolvingNames;
  }

  /**
   * Names are resolved each cycle: when the walk is over and the next cycle may start (its
   * period over, `nextCycleAt`), once per cycle number, so the next cycle's snapshot has fresh
   * addresses.
   */
  async resolveNamesIfDue(cycle: CycleBoundary, nextCycleAt: () => number | undefined): Promise<void> {
    if (!this.resolvesNames || !cycle.atEnd) return;
    // Start and size too: a cycle over an empty scope begins again under the same number.
    const { cycle: number, startedAt, size } = cycle.progress();
    const key = `${number}@${startedAt}/${size}`;
    if (this.namesResolvedFor === key) {
      // Another request is resolving for this boundary: the next cycle must not begin before it is done.
      if (this.resolvingNames) await this.resolvingNames;
      return;
    }
    if ((nextCycleAt() ?? 0) > this.now()) return;
    this.namesResolvedFor = key;
    await this.resolveNames();
  }

  /** The scope names an address resolved to (last resolution), if any. */
  namesOf(ip: string): readonly string[] | undefined {
    return this.nameResolution?.namesByIp.get(ip);
  }

  /**
   * What a scope name resolved to at the last resolution (for the admin UI): its target
   * addresses, or undefined when this process has not resolved it (no resolver, or not yet).
   */
  addressesOfName(name: string): readonly string[] | undefined {
    return this.resolver ? this.nameResolution?.addresses.get(name) : undefined;
  }

  /** The resolver of the scope's names (`hosts file …`, `DNS …`), or undefined when this process does not resolve. */
  get nameResolverDescription(): string | undefined {
    return this.resolver?.description;
  }
}

/** The blocklist holds addresses only: a name there would block whatever DNS says today. */
function refuseNamesInBlocklist(list: ScopeListName, lines: readonly ScopeLine[]): void {
  if (list !== 'blocklist') return;
  const i = lines.findIndex((l) => asDnsName(l.range) === l.range);
  if (i >= 0)
    throw new PortbanditError('PB_ERR_ADDRESS', `the blocklist takes addresses, CIDRs and ranges, not DNS names (${lines[i]!.range})`, {
      where: `entries[${i}]`,
    });
}

/** Canonical text of an address (as the store keeps it). */
export function normalizeIp(ip: string): string {
  return canonicalIp(ip, 'ip');
}
