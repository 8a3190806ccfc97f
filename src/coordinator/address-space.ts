import { type AddressRange, type Family, formatAddress, formatRange, parseTargetSpec } from './address.js';

/** One scope or blocklist line: a target spec (address, CIDR, range) and its tags. */
export interface ScopeItem {
  readonly target: string;
  readonly tags: readonly string[];
  /** A blocklist item removes its addresses from the scope; its tags are kept for export only. */
  readonly blocklist: boolean;
}

/** A maximal run of in-scope addresses sharing one tag set. */
export interface Segment extends AddressRange {
  readonly tags: readonly string[];
}

/** An address of the space, with the tags of every scope item that holds it. */
export interface SpaceAddress {
  readonly family: Family;
  readonly value: bigint;
  readonly ip: string;
  readonly tags: readonly string[];
}

interface Event {
  readonly family: Family;
  readonly at: bigint;
  readonly delta: 1 | -1;
  readonly blocklist: boolean;
  readonly tags: readonly string[];
}

/**
 * The scope minus the blocklist as sorted, disjoint segments (IPv4 before IPv6) with prefix
 * sums, so the i-th address is found by binary search: nothing is ever materialised, a /8 or
 * an IPv6 /48 costs a few segments.
 */
export class AddressSpace {
  readonly segments: readonly Segment[];
  /** offsets[k] = number of addresses in segments before k; offsets[n] = size. */
  private readonly offsets: readonly bigint[];

  private constructor(segments: Segment[]) {
    this.segments = segments;
    const offsets: bigint[] = [0n];
    for (const s of segments) offsets.push(offsets[offsets.length - 1]! + (s.end - s.start + 1n));
    this.offsets = offsets;
  }

  static readonly EMPTY = new AddressSpace([]);

  /** Build from scope and blocklist items (specs are validated; errors name `where[i]`). */
  static build(items: readonly ScopeItem[], where = 'scope'): AddressSpace {
    const events: Event[] = [];
    items.forEach((item, i) => {
      const r = parseTargetSpec(item.target, `${where}[${i}]`);
      events.push({ family: r.family, at: r.start, delta: 1, blocklist: item.blocklist, tags: item.tags });
      events.push({ family: r.family, at: r.end + 1n, delta: -1, blocklist: item.blocklist, tags: item.tags });
    });
    events.sort((a, b) => a.family - b.family || (a.at < b.at ? -1 : a.at > b.at ? 1 : 0));
    const segments: Segment[] = [];
    const tagCount = new Map<string, number>();
    let scopeCount = 0;
    let blockCount = 0;
    let i = 0;
    while (i < events.length) {
      const family = events[i]!.family;
      const at = events[i]!.at;
      for (; i < events.length && events[i]!.family === family && events[i]!.at === at; i++) {
        const e = events[i]!;
        if (e.blocklist) blockCount += e.delta;
        else {
          scopeCount += e.delta;
          for (const t of e.tags) tagCount.set(t, (tagCount.get(t) ?? 0) + e.delta);
        }
      }
      const next = i < events.length && events[i]!.family === family ? events[i]!.at : undefined;
      if (next === undefined || scopeCount <= 0 || blockCount > 0) continue;
      const tags = [...tagCount]
        .filter(([, n]) => n > 0)
        .map(([t]) => t)
        .sort();
      const last = segments[segments.length - 1];
      if (last && last.family === family && last.end + 1n === at && sameTags(last.tags, tags)) {
        segments[segments.length - 1] = { ...last, end: next - 1n };
      } else {
        segments.push({ family, start: at, end: next - 1n, tags: Object.freeze(tags) });
      }
    }
    return new AddressSpace(segments);
  }

  /** Number of addresses in the space. */
  get size(): bigint {
    return this.offsets[this.offsets.length - 1]!;
  }

  /** The index-th address (0 <= index < size), ascending (IPv4 first). */
  nth(index: bigint): SpaceAddress {
    if (index < 0n || index >= this.size) throw new RangeError(`address index ${index} outside [0, ${this.size})`);
    let lo = 0;
    let hi = this.segments.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.offsets[mid]! <= index) lo = mid;
      else hi = mid - 1;
    }
    const seg = this.segments[lo]!;
    const value = seg.start + (index - this.offsets[lo]!);
    return { family: seg.family, value, ip: formatAddress(seg.family, value), tags: seg.tags };
  }

  /** The segment holding an address, or undefined when it is outside the space. */
  find(family: Family, value: bigint): Segment | undefined {
    let lo = 0;
    let hi = this.segments.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const s = this.segments[mid]!;
      if (s.family < family || (s.family === family && s.end < value)) lo = mid + 1;
      else if (s.family > family || s.start > value) hi = mid - 1;
      else return s;
    }
    return undefined;
  }

  /** The ranges of the space as compact text (CIDR or first-last), with tags. */
  describe(): Array<{ range: string; tags: readonly string[]; size: string }> {
    return this.segments.map((s) => ({ range: formatRange(s), tags: s.tags, size: String(s.end - s.start + 1n) }));
  }

  /** Addresses of the space by tag ("" for untagged), for coverage statistics. */
  sizeByTag(): Map<string, bigint> {
    const out = new Map<string, bigint>();
    for (const s of this.segments) {
      const n = s.end - s.start + 1n;
      for (const t of s.tags.length > 0 ? s.tags : ['']) out.set(t, (out.get(t) ?? 0n) + n);
    }
    return out;
  }
}

function sameTags(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((t, i) => t === b[i]);
}
