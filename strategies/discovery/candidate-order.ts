import type { PortCatalog } from '../../src/catalog/index.js';
import { fmix32 as mix, fnv1a32, MAX_PORT } from '../../src/core/index.js';

/**
 * The untargeted discovery order of a prefix, over all 65,535 ports: first nmap's whole table
 * by open frequency (ports with a figure, most frequent first, then the ports nmap names with no
 * figure, ascending), then every other port in a seeded per-prefix permutation, re-drawn on each
 * full pass. Nothing per prefix is stored: the permutation is an affine map k -> (a k + b) mod R
 * over the R remaining ports, with a and b hashed from (prefix, pass).
 */
export class CandidateOrder {
  /** nmap's table: frequency order, then the zero-frequency entries. */
  readonly table: Uint16Array;
  /** Every other port, ascending (permuted per prefix when read). */
  readonly rest: Uint16Array;

  private constructor(catalog: PortCatalog) {
    const inTable = new Uint8Array(MAX_PORT + 1);
    const table: number[] = Array.from(catalog.byFrequency);
    for (const p of table) inTable[p] = 1;
    for (let p = 1; p <= MAX_PORT; p++) {
      if (inTable[p] === 0 && catalog.name(p) !== undefined) {
        table.push(p);
        inTable[p] = 1;
      }
    }
    const rest: number[] = [];
    for (let p = 1; p <= MAX_PORT; p++) if (inTable[p] === 0) rest.push(p);
    this.table = Uint16Array.from(table);
    this.rest = Uint16Array.from(rest);
  }

  private static readonly cache = new WeakMap<PortCatalog, CandidateOrder>();

  /** The order for a catalog (built once per catalog). */
  static of(catalog: PortCatalog): CandidateOrder {
    let o = CandidateOrder.cache.get(catalog);
    if (o === undefined) {
      o = new CandidateOrder(catalog);
      CandidateOrder.cache.set(catalog, o);
    }
    return o;
  }

  /** Length of one full pass (every port once). */
  get length(): number {
    return this.table.length + this.rest.length;
  }

  /** The last (prefix, pass) permutation asked for: a slice reads many positions of one. */
  private readonly last = { prefixHash: 0, pass: -1, a: 1, b: 0 };

  /** The port at absolute position `k` (any non-negative integer) of `prefix`'s order. */
  at(prefixHash: number, k: number): number {
    const n = this.length;
    const pass = Math.floor(k / n);
    const i = k - pass * n;
    if (i < this.table.length) return this.table[i]!;
    const r = this.rest.length;
    const last = this.last;
    if (last.pass !== pass || last.prefixHash !== prefixHash) {
      const h = mix(prefixHash ^ Math.imul(pass + 1, 0x9e3779b1));
      last.prefixHash = prefixHash;
      last.pass = pass;
      last.a = coprimeStep(h, r);
      last.b = mix(h) % r;
    }
    return this.rest[(last.a * (i - this.table.length) + last.b) % r]!;
  }
}

function gcd(a: number, b: number): number {
  while (b !== 0) [a, b] = [b, a % b];
  return a;
}

/** A step in [1, r) coprime to r, derived from h (so k -> a k + b is a permutation mod r). */
function coprimeStep(h: number, r: number): number {
  if (r <= 2) return 1;
  let a = 1 + (h % (r - 1));
  while (gcd(a, r) !== 1) a = a + 1 === r ? 1 : a + 1;
  return a;
}

/** A stable hash of a prefix string (FNV-1a, 32-bit; src/core/hash.ts). */
export const hashPrefix: (prefix: string) => number = fnv1a32;
