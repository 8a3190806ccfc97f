import type { FastifyRequest } from 'fastify';
import type { Coordinator } from '../coordinator.js';
import { tokenKind } from '../tokens.js';

/** The cookie that carries an operator's admin token (HttpOnly, SameSite=Strict, Path=/ui). */
export const SESSION_COOKIE = 'pb_ui';

/** How a UI request authenticated, or why it did not. */
export type UiAuth = { ok: true } | { ok: false; reason: 'missing' | 'invalid' | 'wrong-role' };

const verdicts = new WeakMap<FastifyRequest, UiAuth>();

/** Read one cookie from the Cookie header (no dependency: the UI needs one cookie only). */
export function readCookie(header: string | undefined, name: string): string | undefined {
  if (header === undefined) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) {
      try {
        return decodeURIComponent(part.slice(eq + 1).trim());
      } catch {
        return undefined;
      }
    }
  }
  return undefined;
}

/** The token a UI request presents: the Authorization header first (as the API), else the cookie. */
export function presentedToken(req: FastifyRequest): string | undefined {
  const h = req.headers.authorization;
  if (typeof h === 'string') {
    const m = /^Bearer\s+(\S+)$/i.exec(h);
    if (m) return m[1];
  }
  return readCookie(req.headers.cookie, SESSION_COOKIE);
}

/**
 * Check (once per request) that the request carries an admin token. The UI shows what the
 * admin-only results API shows, so it asks for the same token; revoking it logs the UI out.
 */
export async function authenticateUi(req: FastifyRequest, coordinator: Coordinator): Promise<UiAuth> {
  const cached = verdicts.get(req);
  if (cached) return cached;
  const token = presentedToken(req);
  let verdict: UiAuth;
  if (token === undefined || token === '') verdict = { ok: false, reason: 'missing' };
  else if (tokenKind(token) === 'admin' && (await coordinator.authenticateAdmin(token))) verdict = { ok: true };
  else if (tokenKind(token) === 'agent' && (await coordinator.authenticateAgent(token))) verdict = { ok: false, reason: 'wrong-role' };
  else verdict = { ok: false, reason: 'invalid' };
  verdicts.set(req, verdict);
  return verdict;
}

/** The Set-Cookie value for a session (Secure when the request came over TLS). */
export function sessionCookie(token: string, secure: boolean): string {
  return `${SESSION_COOKIE}=${encodeURIComponent(token)}; Path=/ui; HttpOnly; SameSite=Strict${secure ? '; Secure' : ''}`;
}

/** The Set-Cookie value that ends a session. */
export function clearedSessionCookie(): string {
  return `${SESSION_COOKIE}=; Path=/ui; HttpOnly; SameSite=Strict; Max-Age=0`;
}
