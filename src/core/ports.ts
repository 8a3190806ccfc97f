import { PortbanditError } from './errors.js';

export const MIN_PORT = 1;
export const MAX_PORT = 65535;
export const PORT_COUNT = MAX_PORT - MIN_PORT + 1;

export function isPort(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= MIN_PORT && value <= MAX_PORT;
}

/**
 * A set of TCP ports held as sorted, merged, inclusive ranges. This is how `probed` is kept:
 * "1-65535" is one pair, a fixed list of 1,000 ports a few hundred pairs.
 */
export class PortRanges {
  /** Flat [start0, end0, start1, end1, ...], sorted, non-overlapping, non-adjacent. */
  readonly bounds: Uint32Array;
  readonly size: number;

  private constructor(bounds: Uint32Array) {
    this.bounds = bounds;
    let size = 0;
    for (let i = 0; i < bounds.length; i += 2) size += bounds[i + 1]! - bounds[i]! + 1;
    this.size = size;
  }

  static readonly ALL = new PortRanges(Uint32Array.of(MIN_PORT, MAX_PORT));
  static readonly EMPTY = new PortRanges(new Uint32Array(0));

  /** Build from any ports (unsorted, duplicates allowed). Throws on a value that is not a port. */
  static fromPorts(ports: Iterable<number>, where?: string): PortRanges {
    const list = Array.isArray(ports) ? (ports as readonly number[]) : [...ports];
    // One pass while the list ascends (a work item's, a strategy's sweep: tens of thousands of
    // ports), validating and merging as it goes; the first port out of order sends the whole list
    // through a sorted copy.
    const out: number[] = [];
    let start = 0;
    let end = -1;
    let i = 0;
    for (; i < list.length; i++) {
      const p = list[i]!;
      if (!isPort(p)) throw new PortbanditError('PB_ERR_PORT_SPEC', `expected ports 1-65535, got ${JSON.stringify(p)}`, { where });
      if (p < end) break;
      if (p > end + 1) {
        if (end >= 0) out.push(start, end);
        start = p;
      }
      end = p;
    }
    if (i === list.length) {
      if (end >= 0) out.push(start, end);
      return new PortRanges(Uint32Array.from(out));
    }
    for (; i < list.length; i++) {
      const p = list[i];
      if (!isPort(p)) throw new PortbanditError('PB_ERR_PORT_SPEC', `expected ports 1-65535, got ${JSON.stringify(p)}`, { where });
    }
    const sorted = [...list].sort((a, b) => a - b);
    out.length = 0;
    for (const p of sorted) {
      const last = out.length - 1;
      if (last >= 0 && p <= out[last]! + 1) {
        if (p > out[last]!) out[last] = p;
      } else out.push(p, p);
    }
    // Sorted and merged (adjacent ports join) already.
    return new PortRanges(Uint32Array.from(out));
  }

  /** Build from [start, end] pairs, merging overlaps. */
  static fromPairs(pairs: readonly number[]): PortRanges {
    const items: Array<[number, number]> = [];
    for (let i = 0; i < pairs.length; i += 2) items.push([pairs[i]!, pairs[i + 1]!]);
    items.sort((a, b) => a[0] - b[0]);
    const out: number[] = [];
    for (const [s, e] of items) {
      const last = out.length - 1;
      if (last >= 0 && s <= out[last]! + 1) {
        if (e > out[last]!) out[last] = e;
      } else out.push(s, e);
    }
    return new PortRanges(Uint32Array.from(out));
  }

  /**
   * Parse a port specification: "1-65535", "22,80,443", "1-1024,8080", or a JSON array of
   * ports and "a-b" strings. Whitespace around items is allowed; an open end ("-1024",
   * "60000-") runs to the edge of the port space, as in nmap's -p.
   */
  static parse(spec: string | readonly (number | string)[], where?: string): PortRanges {
    if (typeof spec === 'string') {
      // The canonical form (what portbandit writes) is read digit by digit, without a regular expression per item.
      const bounds = canonicalSpecBounds(spec);
      if (bounds !== undefined) return new PortRanges(Uint32Array.from(bounds));
    }
    const items = typeof spec === 'string' ? spec.split(',') : spec.map((x) => (typeof x === 'number' ? String(x) : x));
    if (typeof spec === 'string' && spec.trim() === '') {
      throw new PortbanditError('PB_ERR_PORT_SPEC', 'expected a port specification such as "1-65535" or "22,80,443", got an empty string', {
        where,
      });
    }
    const pairs: number[] = [];
    for (const raw of items) {
      if (typeof raw !== 'string') {
        throw new PortbanditError('PB_ERR_PORT_SPEC', `expected a port or "a-b" range, got ${JSON.stringify(raw)}`, { where });
      }
      const item = raw.trim();
      const m = /^(\d*)\s*-\s*(\d*)$/.exec(item);
      let start: number;
      let end: number;
      if (m && (m[1] !== '' || m[2] !== '')) {
        start = m[1] === '' ? MIN_PORT : Number(m[1]);
        end = m[2] === '' ? MAX_PORT : Number(m[2]);
      } else if (/^\d+$/.test(item)) {
        start = end = Number(item);
      } else {
        throw new PortbanditError('PB_ERR_PORT_SPEC', `expected a port or "a-b" range, got ${JSON.stringify(raw)}`, { where });
      }
      if (!isPort(start) || !isPort(end) || start > end) {
        throw new PortbanditError('PB_ERR_PORT_SPEC', `expected a range within 1-65535 with start <= end, got ${JSON.stringify(raw)}`, {
          where,
        });
      }
      pairs.push(start, end);
    }
    return PortRanges.fromPairs(pairs);
  }

  has(port: number): boolean {
    const b = this.bounds;
    // Binary search over range starts.
    let lo = 0;
    let hi = (b.length >> 1) - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const s = b[mid * 2]!;
      if (port < s) hi = mid - 1;
      else if (port > b[mid * 2 + 1]!) lo = mid + 1;
      else return true;
    }
    return false;
  }

  /** The i-th port in ascending order (0-based), or -1 when out of range. */
  nth(index: number): number {
    const b = this.bounds;
    let i = index;
    for (let k = 0; k < b.length; k += 2) {
      const len = b[k + 1]! - b[k]! + 1;
      if (i < len) return b[k]! + i;
      i -= len;
    }
    return -1;
  }

  get isAll(): boolean {
    return this.bounds.length === 2 && this.bounds[0] === MIN_PORT && this.bounds[1] === MAX_PORT;
  }

  *[Symbol.iterator](): IterableIterator<number> {
    const b = this.bounds;
    for (let i = 0; i < b.length; i += 2) for (let p = b[i]!; p <= b[i + 1]!; p++) yield p;
  }

  toArray(): number[] {
    // Sized once: a whole-port round holds 65,535 ports, and pushes grew (and copied) the list ~30 times.
    const out: number[] = [];
    out.length = this.size;
    const b = this.bounds;
    let n = 0;
    for (let i = 0; i < b.length; i += 2) for (let p = b[i]!, end = b[i + 1]!; p <= end; p++) out[n++] = p;
    return out;
  }

  equals(other: PortRanges): boolean {
    if (other.bounds.length !== this.bounds.length) return false;
    for (let i = 0; i < this.bounds.length; i++) if (other.bounds[i] !== this.bounds[i]) return false;
    return true;
  }

  /** The canonical spec string: "1-65535", "22,80,443,8000-8100". */
  toString(): string {
    const parts: string[] = [];
    const b = this.bounds;
    for (let i = 0; i < b.length; i += 2) parts.push(b[i] === b[i + 1] ? String(b[i]) : `${b[i]}-${b[i + 1]}`);
    return parts.join(',');
  }
}

/** Sorted, de-duplicated copy of a port list; throws naming `where` on a non-port. */
export function normalizePorts(ports: Iterable<number>, where?: string): number[] {
  const set = new Set<number>();
  for (const p of ports) {
    if (!isPort(p)) throw new PortbanditError('PB_ERR_PORT_SPEC', `expected ports 1-65535, got ${JSON.stringify(p)}`, { where });
    set.add(p);
  }
  return [...set].sort((a, b) => a - b);
}

/**
 * The ranges of a canonical spec ("21,80-82,443": ascending, disjoint, not adjacent, no spaces),
 * read digit by digit, as flat [start, end, ...] pairs; undefined for anything else (the caller
 * then parses it in full, or refuses it). What portbandit stores and sends is canonical, and a
 * regular expression per port was half the cost of reading one.
 */
export function canonicalSpecBounds(spec: string): number[] | undefined {
  const out: number[] = [];
  let value = -1;
  let start = -1;
  for (let i = 0; i <= spec.length; i++) {
    const c = i < spec.length ? spec.charCodeAt(i) : 44; // the end closes the last item like a comma
    if (c >= 48 && c <= 57) {
      value = (value < 0 ? 0 : value * 10) + (c - 48);
      if (value > MAX_PORT) return undefined;
    } else if (c === 45 && start < 0 && value >= 0) {
      start = value; // '-'
      value = -1;
    } else if (c === 44 && value >= MIN_PORT) {
      const from = start < 0 ? value : start;
      if (from < MIN_PORT || from > value || (out.length > 0 && from <= out[out.length - 1]! + 1)) return undefined;
      out.push(from, value);
      value = -1;
      start = -1;
    } else return undefined;
  }
  return out;
}
