/**
 * The project's one family of small, seedless, non-cryptographic hashes (used to place hosts in
 * discovery slices, pick swept hosts, permute the port space and hash feature names). Stable
 * across versions: states and recordings depend on their values.
 */

/** murmur3's 32-bit finaliser: a cheap, well-distributed mixer of a 32-bit integer. */
export function fmix32(input: number): number {
  let x = input >>> 0;
  x ^= x >>> 16;
  x = Math.imul(x, 0x85ebca6b);
  x ^= x >>> 13;
  x = Math.imul(x, 0xc2b2ae35);
  x ^= x >>> 16;
  return x >>> 0;
}

/** FNV-1a, 32-bit, over the UTF-16 code units of `text`. */
export function fnv1a32(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/**
 * FNV-1a then murmur3's finaliser: FNV-1a alone mixes its last characters poorly (keys that
 * differ only in a trailing epoch number keep nearly the same order); the finaliser fixes that.
 */
export function hashText(text: string): number {
  return fmix32(fnv1a32(text));
}
