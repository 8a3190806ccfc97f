/**
 * The type and pixel size of a PNG or JPEG image, read from its header bytes only (no decoding).
 * The agent reports what it captured with it, and the coordinator checks a submitted screenshot
 * with it: a file whose bytes are not a PNG or JPEG is never stored or served as an image.
 */

export type ImageMime = 'image/png' | 'image/jpeg';

export interface ImageInfo {
  readonly mime: ImageMime;
  readonly width: number;
  readonly height: number;
}

const PNG_MAGIC = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** Start-of-frame markers (baseline, progressive, ...): every SOFn but DHT (C4), JPG (C8) and DAC (CC). */
const JPEG_SOF = new Set([0xc0, 0xc1, 0xc2, 0xc3, 0xc5, 0xc6, 0xc7, 0xc9, 0xca, 0xcb, 0xcd, 0xce, 0xcf]);

/** The image's type and size, or undefined when `bytes` is not a well-formed PNG or JPEG header. */
export function readImageInfo(bytes: Uint8Array): ImageInfo | undefined {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (buf.length >= 24 && buf.subarray(0, 8).equals(PNG_MAGIC) && buf.toString('latin1', 12, 16) === 'IHDR') {
    const width = buf.readUInt32BE(16);
    const height = buf.readUInt32BE(20);
    return width > 0 && height > 0 ? { mime: 'image/png', width, height } : undefined;
  }
  if (buf.length >= 4 && buf[0] === 0xff && buf[1] === 0xd8 && buf[2] === 0xff) {
    // Walk the marker segments to the first start-of-frame, which holds the size.
    let at = 2;
    while (at + 4 <= buf.length) {
      if (buf[at] !== 0xff) return undefined;
      const marker = buf[at + 1]!;
      if (marker === 0xff) {
        at++; // fill byte
        continue;
      }
      if (marker === 0xd8 || marker === 0x01 || (marker >= 0xd0 && marker <= 0xd7)) {
        at += 2; // markers without a length
        continue;
      }
      const length = buf.readUInt16BE(at + 2);
      if (length < 2) return undefined;
      if (JPEG_SOF.has(marker)) {
        if (at + 9 > buf.length) return undefined;
        const height = buf.readUInt16BE(at + 5);
        const width = buf.readUInt16BE(at + 7);
        return width > 0 && height > 0 ? { mime: 'image/jpeg', width, height } : undefined;
      }
      at += 2 + length;
    }
  }
  return undefined;
}
