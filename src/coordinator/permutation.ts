import { createHash } from 'node:crypto';
import { fmix32 as mix32 } from '../core/index.js';

const ROUNDS = 6;

/** Half-widths up to this many bits take the plain-number path (2 * 26 bits fit a double exactly). */
const SMALL_HALF_BITS = 26;

/**
 * A keyed bijection of [0, size) for any bigint size, without tables: a balanced Feistel
 * network over the smallest even-width bit domain holding `size`, with cycle walking (re-apply
 * until the value falls inside [0, size)). The domain is < 4 * size, so a lookup walks at most
 * a few times on average. Not cryptographic; it only has to look shuffled and be exact.
 */
export class Permutation {
  readonly size: bigint;
  private readonly half: number;
  private readonly halfMask: bigint;
  private readonly words: number;
  private readonly keys: Uint32Array;

  constructor(size: bigint, key: string) {
    if (size < 0n) throw new RangeError(`permutation size must be >= 0, got ${size}`);
    this.size = size;
    const bits = Math.max(2, (size > 1n ? size - 1n : 1n).toString(2).length);
    this.half = Math.ceil(bits / 2);
    this.halfMask = (1n << BigInt(this.half)) - 1n;
    this.words = Math.ceil(this.half / 32);
    const digest = createHash('sha256').update(`portbandit.permutation\u0000${key}`).digest();
    this.keys = new Uint32Array(ROUNDS);
    for (let r = 0; r < ROUNDS; r++) this.keys[r] = digest.readUInt32LE(r * 4);
  }

  /** The image of `index` (0 <= index < size). */
  at(index: bigint): bigint {
    if (index < 0n || index >= this.size) throw new RangeError(`permutation index ${index} outside [0, ${this.size})`);
    if (this.half <= SMALL_HALF_BITS) return BigInt(this.atSmall(Number(index)));
    let x = index;
    do x = this.encrypt(x);
    while (x >= this.size);
    return x;
  }

  /**
   * `at` in plain numbers, for domains up to 2^52 (a /8 of IPv4 is 2^24; one lease asks for one
   * image, and the bigint arithmetic was a few percent of a getwork). The same function exactly.
   */
  private atSmall(index: number): number {
    const size = Number(this.size);
    const halfSize = 2 ** this.half;
    let x = index;
    do {
      let left = Math.floor(x / halfSize);
      let right = x % halfSize;
      for (let r = 0; r < ROUNDS; r++) {
        const next = left ^ (mix32(mix32(right ^ this.keys[r]!) + this.keys[r]!) % halfSize);
        left = right;
        right = next >>> 0;
      }
      x = left * halfSize + right;
    } while (x >= size);
    return x;
  }

  private encrypt(x: bigint): bigint {
    const h = BigInt(this.half);
    let left = x >> h;
    let right = x & this.halfMask;
    for (let r = 0; r < ROUNDS; r++) {
      const next = left ^ this.round(right, this.keys[r]!);
      left = right;
      right = next;
    }
    return (left << h) | right;
  }

  private round(value: bigint, key: number): bigint {
    if (this.words === 1) {
      const v = Number(value);
      return BigInt(mix32(mix32(v ^ key) + key)) & this.halfMask;
    }
    let acc = key;
    let v = value;
    for (let w = 0; w < this.words; w++) {
      acc = mix32(acc ^ Number(v & 0xffffffffn)) + 0x9e3779b9;
      v >>= 32n;
    }
    let out = 0n;
    for (let w = 0; w < this.words; w++) out = (out << 32n) | BigInt(mix32(acc + Math.imul(w + 1, 0x9e3779b9)));
    return out & this.halfMask;
  }
}
