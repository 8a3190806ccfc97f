import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { PortbanditError, readImageInfo } from '../core/index.js';
import { type NewScreenshot, ScreenshotStore, type ScanDocument, type ScreenshotMeta } from '../store/index.js';
import { MAX_SCREENSHOT_BYTES, MAX_SCREENSHOT_RESULT_BYTES, type ResultSubmission } from '../protocol/index.js';

/** A submitted screenshot, decoded and checked. */
export interface CheckedScreenshot extends ScreenshotMeta {
  readonly data: Buffer;
}

function reject(message: string, where: string): never {
  throw new PortbanditError('PB_ERR_SCREENSHOT', message, { where });
}

/**
 * Check a submission's screenshots beyond the schema: each names an open port of the same result
 * (once), decodes to at most MAX_SCREENSHOT_BYTES, is a PNG or JPEG by its own bytes (matching
 * `mime`, `width` and `height`), and all together stay within MAX_SCREENSHOT_RESULT_BYTES.
 * Throws PB_ERR_SCREENSHOT naming the screenshot; nothing of the result is stored then.
 */
export function checkScreenshots(input: Pick<ResultSubmission, 'status' | 'ports' | 'screenshots'>): CheckedScreenshot[] {
  const shots = input.screenshots ?? [];
  if (shots.length === 0) return [];
  const open = new Set(input.status === 'up' ? input.ports.filter((p) => p.state === 'open').map((p) => p.port) : []);
  const seen = new Set<number>();
  let total = 0;
  return shots.map((shot, i) => {
    const where = `screenshots[${i}]`;
    if (!open.has(shot.port)) reject(`port ${shot.port} is not an open port of this result; a screenshot must show one`, `${where}.port`);
    if (seen.has(shot.port)) reject(`port ${shot.port} has two screenshots`, `${where}.port`);
    seen.add(shot.port);
    const data = Buffer.from(shot.data, 'base64');
    if (data.length > MAX_SCREENSHOT_BYTES)
      reject(`the image is ${data.length} bytes; at most ${MAX_SCREENSHOT_BYTES} are allowed`, `${where}.data`);
    total += data.length;
    if (total > MAX_SCREENSHOT_RESULT_BYTES)
      reject(`the screenshots total more than ${MAX_SCREENSHOT_RESULT_BYTES} bytes`, `${where}.data`);
    const info = readImageInfo(data);
    if (!info) reject('the data is not a PNG or JPEG image', `${where}.data`);
    if (info.mime !== shot.mime) reject(`the data is ${info.mime}, not ${shot.mime}`, `${where}.mime`);
    if (info.width !== shot.width || info.height !== shot.height) {
      reject(`the image is ${info.width}x${info.height}, not ${shot.width}x${shot.height}`, `${where}.width`);
    }
    return {
      port: shot.port,
      scheme: shot.scheme,
      mime: info.mime,
      width: info.width,
      height: info.height,
      bytes: data.length,
      ...(shot.title !== undefined && shot.title !== '' ? { title: shot.title } : {}),
      data,
    };
  });
}

/**
 * The visit's document with its screenshots' metadata: this round's, over those of earlier
 * rounds of the same visit (by port). Unchanged when neither has any.
 */
export function withScreenshots(scan: ScanDocument, prior: ScanDocument | undefined, shots: readonly CheckedScreenshot[]): ScanDocument {
  const byPort = new Map<number, ScreenshotMeta>();
  for (const m of prior?.screenshots ?? []) byPort.set(m.port, m);
  for (const { data: _data, ...meta } of shots) byPort.set(meta.port, meta);
  if (byPort.size === 0) return scan;
  return { ...scan, screenshots: [...byPort.values()].sort((a, b) => a.port - b.port) };
}

/** The screenshot store's SQLite file inside a data directory. */
export function screenshotsPath(dataDir: string): string {
  return join(dataDir, 'screenshots.db');
}

/**
 * The coordinator's screenshot store, opened on first use (a coordinator that never receives a
 * screenshot creates no file): `<dataDir>/screenshots.db` with `screenshotBudgetBytes`.
 */
export class ScreenshotArchive {
  private store: ScreenshotStore | undefined;
  private closed = false;

  constructor(
    private readonly path: string,
    private readonly budgetBytes: number,
  ) {}

  static forDataDir(dataDir: string, budgetBytes: number): ScreenshotArchive {
    return new ScreenshotArchive(screenshotsPath(dataDir), budgetBytes);
  }

  /** The store (opening, and creating, it). */
  open(): ScreenshotStore {
    if (this.closed)
      throw new PortbanditError('PB_ERR_STORE', 'the screenshot store is closed (the coordinator is shutting down)', { where: this.path });
    this.store ??= ScreenshotStore.open(this.path, this.budgetBytes);
    return this.store;
  }

  /** The store if it exists (reads never create the file); undefined before the first image. */
  existing(): ScreenshotStore | undefined {
    if (this.store === undefined && !this.closed && !existsSync(this.path)) return undefined;
    return this.open();
  }

  /** The configured budget (also when no store exists yet). */
  get budget(): number {
    return this.budgetBytes;
  }

  /** Keep a visit's checked images; returns how many old images the budget dropped. */
  put(scanId: string, ip: string, shots: readonly CheckedScreenshot[], at: number): number {
    if (shots.length === 0) return 0;
    const entries: NewScreenshot[] = shots.map((s) => ({ ...s, scanId, ip }));
    return this.open().put(entries, at).evicted;
  }

  close(): void {
    this.closed = true;
    this.store?.close();
    this.store = undefined;
  }
}
