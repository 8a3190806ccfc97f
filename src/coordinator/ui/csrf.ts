import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { isPortbanditError } from '../../core/index.js';
import type { Store } from '../../store/index.js';

/** The hidden form field every UI form posts its CSRF token in. */
export const CSRF_FIELD = '_csrf';

const KEY_DOCUMENT = 'ui-csrf-key';

/**
 * The installation's CSRF key: 32 random bytes kept in the store (so every coordinator process
 * of one installation, and a restarted one, accepts the forms the others rendered). Created by
 * the first process that needs it; a second one racing it reads the winner's.
 */
export async function loadCsrfKey(store: Store, now: number): Promise<Buffer> {
  const existing = await store.getDocument<{ key: string }>('coordinator', KEY_DOCUMENT);
  if (existing) return Buffer.from(existing.value.key, 'base64url');
  const key = randomBytes(32).toString('base64url');
  try {
    await store.putDocument('coordinator', KEY_DOCUMENT, { key, createdAt: now }, { at: now, expectedRevision: 0 });
    return Buffer.from(key, 'base64url');
  } catch (error) {
    if (!isPortbanditError(error, 'PB_ERR_CONFLICT')) throw error;
    return Buffer.from((await store.getDocument<{ key: string }>('coordinator', KEY_DOCUMENT))!.value.key, 'base64url');
  }
}

/**
 * The synchronizer token of a session: an HMAC of the session's admin token under the
 * installation's key. Another site can neither read it (no CORS, frame-ancestors 'none') nor
 * compute it (it knows neither the token nor the key), so a forged form lacks it. It changes with
 * the session: signing in with another token invalidates forms rendered for the old one.
 */
export function csrfTokenFor(key: Buffer, sessionToken: string): string {
  return createHmac('sha256', key).update(`portbandit-ui-csrf\0${sessionToken}`, 'utf8').digest('base64url');
}

/** Constant-time check of a posted CSRF token against the session's. */
export function checkCsrfToken(key: Buffer, sessionToken: string, posted: unknown): boolean {
  if (typeof posted !== 'string' || posted.length === 0 || posted.length > 128) return false;
  const expected = Buffer.from(csrfTokenFor(key, sessionToken), 'utf8');
  const got = Buffer.from(posted, 'utf8');
  return expected.length === got.length && timingSafeEqual(expected, got);
}
