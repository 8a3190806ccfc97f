import { PortbanditError } from '../core/index.js';
import { DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, type PageRequest } from './types.js';

/** A position in a newest-first (or oldest-first) listing of scans: (finishedAt, scanId). */
export interface ScanPosition {
  readonly finishedAt: number;
  readonly scanId: string;
}

/** Encode a scan position as an opaque cursor. */
export function encodeScanCursor(position: ScanPosition): string {
  return Buffer.from(JSON.stringify([position.finishedAt, position.scanId])).toString('base64url');
}

/** Decode a cursor made by `encodeScanCursor`; a bad cursor is the caller's error. */
export function decodeScanCursor(cursor: string): ScanPosition {
  try {
    const value: unknown = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
    if (Array.isArray(value) && value.length === 2 && Number.isSafeInteger(value[0]) && typeof value[1] === 'string') {
      return { finishedAt: value[0] as number, scanId: value[1] };
    }
  } catch {
    // fall through to the coded error below
  }
  throw new PortbanditError('PB_ERR_CURSOR', `'${cursor}' is not a cursor returned by a previous page`, { where: 'cursor' });
}

/** Resolve limit/offset/cursor of a page request with the shared bounds. */
export function resolvePage(page: PageRequest | undefined): { limit: number; offset: number; after: ScanPosition | undefined } {
  const limit = page?.limit ?? DEFAULT_PAGE_SIZE;
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_PAGE_SIZE) {
    throw new PortbanditError('PB_ERR_PAGE', `limit ${limit} is out of range; expected an integer 1-${MAX_PAGE_SIZE}`, { where: 'limit' });
  }
  const offset = page?.offset ?? 0;
  if (!Number.isInteger(offset) || offset < 0) {
    throw new PortbanditError('PB_ERR_PAGE', `offset ${offset} is invalid; expected a non-negative integer`, { where: 'offset' });
  }
  const after = page?.cursor === undefined ? undefined : decodeScanCursor(page.cursor);
  return { limit, offset: after ? 0 : offset, after };
}

/** Resolve a plain positive limit (events, queues, statistics). */
export function resolveLimit(limit: number | undefined, fallback: number, where = 'limit'): number {
  const value = limit ?? fallback;
  if (!Number.isInteger(value) || value < 1 || value > MAX_PAGE_SIZE * 10) {
    throw new PortbanditError('PB_ERR_PAGE', `limit ${value} is out of range; expected an integer 1-${MAX_PAGE_SIZE * 10}`, { where });
  }
  return value;
}
