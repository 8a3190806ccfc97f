import { createHash, randomBytes } from 'node:crypto';

/** Token kinds; the prefix makes a leaked token recognisable (and greppable in secret scanners). */
export type TokenKind = 'agent' | 'admin';

const PREFIX: Record<TokenKind, string> = { agent: 'pba_', admin: 'pbk_' };

/** A new high-entropy bearer token (256 random bits, base64url) with its kind's prefix. */
export function generateToken(kind: TokenKind): string {
  return PREFIX[kind] + randomBytes(32).toString('base64url');
}

/**
 * The stored form of a token: sha256 hex. The tokens are random 256-bit strings, so a fast hash
 * is enough (no dictionary to brute-force); only the hash is ever stored.
 */
export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/** The kind a token claims by its prefix, or undefined for a malformed token. */
export function tokenKind(token: string): TokenKind | undefined {
  if (token.startsWith(PREFIX.agent)) return 'agent';
  if (token.startsWith(PREFIX.admin)) return 'admin';
  return undefined;
}

/** Random bytes for ids, drawn 4 KiB at a time: one lease per work item made randomBytes(9) a hot call. */
let idPool = Buffer.alloc(0);
let idOffset = 0;

/** A short random id for agents, admin tokens and leases (72 random bits). */
export function generateId(prefix: string): string {
  if (idOffset + 9 > idPool.length) {
    idPool = randomBytes(4096);
    idOffset = 0;
  }
  const bytes = idPool.subarray(idOffset, (idOffset += 9));
  return `${prefix}_${bytes.toString('base64url')}`;
}
