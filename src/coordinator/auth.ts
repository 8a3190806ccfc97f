import type { FastifyReply, FastifyRequest } from 'fastify';
import { PortbanditError } from '../core/index.js';
import type { Agent } from '../store/index.js';
import type { Coordinator } from './coordinator.js';
import { tokenKind } from './tokens.js';

/** Who made a request: an agent, an admin, or nobody (no or bad token). */
export type Principal = { kind: 'agent'; agent: Agent } | { kind: 'admin' } | null;

const resolved = new WeakMap<FastifyRequest, Principal>();

/** The token of an `Authorization: Bearer` header, if any. */
export function bearerToken(req: FastifyRequest): string | undefined {
  const h = req.headers.authorization;
  if (typeof h !== 'string') return undefined;
  const m = /^Bearer\s+(\S+)$/i.exec(h);
  return m ? m[1] : undefined;
}

/** Resolve (once per request) the principal behind the request's bearer token. */
export async function resolvePrincipal(req: FastifyRequest, coordinator: Coordinator): Promise<Principal> {
  if (resolved.has(req)) return resolved.get(req)!;
  const token = bearerToken(req);
  let principal: Principal = null;
  if (token !== undefined) {
    const kind = tokenKind(token);
    if (kind === 'agent') {
      const agent = await coordinator.authenticateAgent(token);
      if (agent) principal = { kind: 'agent', agent };
    } else if (kind === 'admin' && (await coordinator.authenticateAdmin(token))) principal = { kind: 'admin' };
  }
  resolved.set(req, principal);
  return principal;
}

/**
 * Route hook factory, used as `preParsing` (after the rate limiter's onRequest, before the body is
 * read and anything is validated): require an agent or an admin token. Refusals are counted and
 * rate-limited.
 */
export function requireRole(coordinator: Coordinator, role: 'agent' | 'admin') {
  return async (req: FastifyRequest, _reply: FastifyReply): Promise<void> => {
    const p = await resolvePrincipal(req, coordinator);
    if (p === null) {
      coordinator.metrics.authFailures.inc({ kind: bearerToken(req) === undefined ? 'missing' : 'invalid' });
      throw new PortbanditError('PB_ERR_UNAUTHORIZED', `a valid ${role} token is required (Authorization: Bearer <token>)`, {
        where: 'authorization',
      });
    }
    if (p.kind !== role) {
      coordinator.metrics.authFailures.inc({ kind: 'wrong-role' });
      throw new PortbanditError('PB_ERR_FORBIDDEN', `this route needs an ${role} token, not an ${p.kind} token`, {
        where: 'authorization',
      });
    }
  };
}

/** The agent behind an agent route (after requireRole(..., 'agent')). */
export function agentOf(req: FastifyRequest): Agent {
  const p = resolved.get(req);
  if (!p || p.kind !== 'agent') throw new PortbanditError('PB_ERR_UNAUTHORIZED', 'an agent token is required', { where: 'authorization' });
  return p.agent;
}
