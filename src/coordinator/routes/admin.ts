import type { FastifyRequest } from 'fastify';
import type { RouteApp } from './types.js';
import { PortbanditError } from '../../core/index.js';
import { AdminActions } from '../admin-actions.js';
import { type AuditActor, identifyAdmin, listAudit } from '../audit.js';
import { bearerToken, requireRole } from '../auth.js';
import type { Coordinator } from '../coordinator.js';
import { DEFAULT_POLICY_KEY, policySchema } from '../policy.js';
import { errorResponseSchema } from '../../protocol/index.js';
import { checkTag, formatScopeFile, normalizeScopeLine, parseScopeFile } from '../scope-file.js';

const errors = {
  400: errorResponseSchema,
  401: errorResponseSchema,
  403: errorResponseSchema,
  404: errorResponseSchema,
  409: errorResponseSchema,
  429: errorResponseSchema,
};
const anyObject = { type: 'object', additionalProperties: true } as const;
const listQuery = {
  type: 'object',
  additionalProperties: false,
  properties: { list: { type: 'string', enum: ['scope', 'blocklist'], default: 'scope' }, replace: { type: 'boolean', default: false } },
} as const;
const scopeEntry = {
  type: 'object',
  additionalProperties: false,
  required: ['range'],
  properties: {
    range: { type: 'string', maxLength: 100 },
    tags: { type: 'array', maxItems: 32, items: { type: 'string', maxLength: 64 } },
  },
} as const;
const scopeListing = {
  type: 'object',
  required: ['list', 'version', 'entries'],
  properties: {
    list: { type: 'string' },
    version: { type: 'integer' },
    entries: {
      type: 'array',
      items: {
        type: 'object',
        properties: { range: { type: 'string' }, tags: { type: 'array', items: { type: 'string' } }, addedAt: { type: 'integer' } },
      },
    },
  },
} as const;
const tagParams = {
  type: 'object',
  required: ['tag'],
  properties: { tag: { type: 'string', maxLength: 64, description: 'A scope tag, or _default for the default policy.' } },
} as const;

/** `_default` in a URL is the default policy (key ""). */
function policyKey(tag: string): string {
  return tag === '_default' ? DEFAULT_POLICY_KEY : checkTag(tag, 'tag');
}

/** The admin behind an API request, for the audit log (after requireRole). */
export function apiActor(coordinator: Coordinator, req: FastifyRequest): Promise<AuditActor> {
  return identifyAdmin(coordinator.store, bearerToken(req), 'api');
}

/** Admin API: scope and blocklist, policies, agents and tokens, rescans, the cycle. Every change is audited. */
export function registerAdminRoutes(app: RouteApp, coordinator: Coordinator): void {
  const actions = new AdminActions(coordinator);
  const actor = (req: FastifyRequest) => apiActor(coordinator, req);
  // preParsing: the token is checked right after the rate limiter (onRequest) and before the
  // body is read or anything is validated, so an anonymous caller learns nothing (not even the
  // schema) and costs nothing.
  const base = { preParsing: requireRole(coordinator, 'admin') } as const;
  const security = [{ bearer: [] }];

  // ---------------------------------------------------------------- scope
  app.get(
    '/api/v1/admin/scope',
    {
      ...base,
      schema: {
        tags: ['scope'],
        summary: 'List the scope or the blocklist.',
        security,
        querystring: listQuery,
        response: { 200: scopeListing, ...errors },
      },
    },
    async (req) => ({ list: req.query.list, ...(await coordinator.store.listScope(req.query.list)) }),
  );

  app.post(
    '/api/v1/admin/scope',
    {
      ...base,
      schema: {
        tags: ['scope'],
        summary:
          'Add (or re-tag) scope or blocklist entries: CIDRs, first-last ranges or addresses, IPv4 or IPv6; DNS names in the scope (resolved each cycle).',
        security,
        querystring: listQuery,
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['entries'],
          properties: { entries: { type: 'array', minItems: 1, maxItems: 100000, items: scopeEntry } },
        },
        response: {
          200: { type: 'object', properties: { version: { type: 'integer' }, added: { type: 'integer' }, addresses: { type: 'string' } } },
          ...errors,
        },
      },
    },
    async (req) => {
      const lines = req.body.entries.map((e, i) => normalizeScopeLine(e.range, e.tags ?? [], `entries[${i}]`));
      const version = await actions.addScope(await actor(req), req.query.list, lines);
      return { version, added: lines.length, addresses: String(coordinator.addressSpace.size) };
    },
  );

  app.post(
    '/api/v1/admin/scope/remove',
    {
      ...base,
      schema: {
        tags: ['scope'],
        summary: 'Remove scope or blocklist entries by range.',
        security,
        querystring: listQuery,
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['ranges'],
          properties: { ranges: { type: 'array', minItems: 1, maxItems: 100000, items: { type: 'string', maxLength: 100 } } },
        },
        response: { 200: { type: 'object', properties: { version: { type: 'integer' }, removed: { type: 'integer' } } }, ...errors },
      },
    },
    async (req) => actions.removeScope(await actor(req), req.query.list, req.body.ranges),
  );

  app.put(
    '/api/v1/admin/scope/import',
    {
      ...base,
      schema: {
        tags: ['scope'],
        summary: "Import Natlas's `ip_or_cidr,tag1,tag2` lines (text/plain); replace=true swaps the whole list atomically.",
        security,
        querystring: listQuery,
        body: { type: 'string', maxLength: 16 * 1024 * 1024 },
        response: {
          200: {
            type: 'object',
            properties: { version: { type: 'integer' }, imported: { type: 'integer' }, addresses: { type: 'string' } },
          },
          ...errors,
        },
      },
    },
    async (req) => {
      const lines = parseScopeFile(req.body, `${req.query.list}-import`);
      const version = await actions.importScope(await actor(req), req.query.list, lines, req.query.replace);
      return { version, imported: lines.length, addresses: String(coordinator.addressSpace.size) };
    },
  );

  app.get(
    '/api/v1/admin/scope/export',
    {
      ...base,
      schema: {
        tags: ['scope'],
        summary: "Export in Natlas's `ip_or_cidr,tag1,tag2` format (text/plain).",
        security,
        querystring: listQuery,
        response: { 200: { type: 'string' }, ...errors },
      },
    },
    async (req, reply) => {
      const listing = await coordinator.store.listScope(req.query.list);
      reply.type('text/plain; charset=utf-8');
      return formatScopeFile(listing.entries);
    },
  );

  // ---------------------------------------------------------------- cycle and rescans
  const progress = {
    type: 'object',
    properties: {
      cycle: { type: 'integer' },
      position: { type: 'string' },
      size: { type: 'string' },
      fraction: { type: 'number' },
      dispensed: { type: 'integer' },
      skipped: { type: 'integer' },
      completed: { type: 'integer' },
      startedAt: { type: 'integer' },
      lastCompletedAt: { type: 'integer' },
    },
  } as const;
  app.get(
    '/api/v1/admin/cycle',
    { ...base, schema: { tags: ['scope'], summary: 'Cycle progress.', security, response: { 200: progress, ...errors } } },
    async () => coordinator.progress(),
  );
  app.post(
    '/api/v1/admin/cycle/restart',
    {
      ...base,
      schema: {
        tags: ['scope'],
        summary: 'Abandon the current cycle and start the next one over the current scope.',
        security,
        response: { 200: progress, ...errors },
      },
    },
    async (req) => actions.restartCycle(await actor(req)),
  );

  app.post(
    '/api/v1/admin/rescan',
    {
      ...base,
      schema: {
        tags: ['scope'],
        summary: 'Queue manual rescans (served before the cycle).',
        security,
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['ips'],
          properties: { ips: { type: 'array', minItems: 1, maxItems: 10000, items: { type: 'string', maxLength: 64 } } },
        },
        response: {
          200: {
            type: 'object',
            properties: {
              queued: { type: 'integer', description: 'Rescans queued.' },
              scanning: {
                type: 'array',
                items: { type: 'string' },
                description: 'Addresses being scanned now (a live lease): not queued, the scan under way is their rescan.',
              },
            },
          },
          ...errors,
        },
      },
    },
    async (req) => {
      const { queued, scanning } = await actions.rescan(await actor(req), req.body.ips);
      return { queued: queued.length, scanning };
    },
  );

  app.get(
    '/api/v1/admin/queue',
    {
      ...base,
      schema: {
        tags: ['scope'],
        summary: 'The work queue (manual rescans, expired leases, follow-ups), head first.',
        security,
        response: {
          200: { type: 'object', properties: { items: { type: 'array', items: anyObject }, inFlight: { type: 'integer' } } },
          ...errors,
        },
      },
    },
    async () => ({
      items: (await coordinator.store.listQueuedWork(1000)).map(({ session: _s, ...rest }) => rest),
      inFlight: await coordinator.store.countLeases(),
    }),
  );

  // ---------------------------------------------------------------- policies
  app.get(
    '/api/v1/admin/policies',
    {
      ...base,
      schema: {
        tags: ['policy'],
        summary: 'Every policy by tag ("" = the default policy).',
        security,
        response: { 200: { type: 'object', properties: { policies: { type: 'array', items: anyObject } } }, ...errors },
      },
    },
    async () => ({ policies: coordinator.policyKeys().map((tag) => ({ tag, ...coordinator.policy(tag) })) }),
  );

  app.get(
    '/api/v1/admin/policies/:tag',
    {
      ...base,
      schema: {
        tags: ['policy'],
        summary: "A tag's policy (_default = the default policy).",
        security,
        params: tagParams,
        response: { 200: anyObject, ...errors },
      },
    },
    async (req) => {
      const key = policyKey(req.params.tag);
      const policy = coordinator.policy(key);
      if (!policy) throw new PortbanditError('PB_ERR_NOT_FOUND', `no policy for tag "${key}"`, { where: 'tag' });
      return { tag: key, ...policy };
    },
  );

  app.put(
    '/api/v1/admin/policies/:tag',
    {
      ...base,
      schema: {
        tags: ['policy'],
        summary: "Set a tag's policy: strategy, params, budget, must-have and excluded ports, nmap options.",
        security,
        params: tagParams,
        body: policySchema,
        response: { 200: anyObject, ...errors },
      },
    },
    async (req) => {
      const key = policyKey(req.params.tag);
      return { tag: key, ...(await actions.setPolicy(await actor(req), key, req.body)) };
    },
  );

  app.put(
    '/api/v1/admin/policies/:tag/services',
    {
      ...base,
      schema: {
        tags: ['policy'],
        summary: 'Upload a Natlas services file (text/plain): the list of a `fixed` policy, otherwise its must-have ports.',
        security,
        params: tagParams,
        body: { type: 'string', maxLength: 4 * 1024 * 1024 },
        response: { 200: anyObject, ...errors },
      },
    },
    async (req) => {
      const key = policyKey(req.params.tag);
      return { tag: key, ...(await actions.uploadServices(await actor(req), key, req.body)) };
    },
  );

  app.delete(
    '/api/v1/admin/policies/:tag',
    {
      ...base,
      schema: {
        tags: ['policy'],
        summary: "Remove a tag's policy (learned state is kept).",
        security,
        params: tagParams,
        response: { 200: { type: 'object', properties: { deleted: { type: 'boolean' } } }, ...errors },
      },
    },
    async (req) => ({ deleted: await actions.deletePolicy(await actor(req), policyKey(req.params.tag)) }),
  );

  app.get(
    '/api/v1/admin/policies/:tag/learned',
    {
      ...base,
      schema: {
        tags: ['policy'],
        summary: "What the tag's strategy learned: top ports with estimates, budget split, batch tallies.",
        security,
        params: tagParams,
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: { limit: { type: 'integer', minimum: 1, maximum: 1000, default: 20 } },
        },
        response: { 200: anyObject, ...errors },
      },
    },
    async (req) => coordinator.explain(policyKey(req.params.tag), req.query.limit),
  );

  // ---------------------------------------------------------------- audit log
  app.get(
    '/api/v1/admin/audit',
    {
      ...base,
      schema: {
        tags: ['audit'],
        summary: 'The audit log, newest first: every change made through the admin API or the UI (who, what, when).',
        security,
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            offset: { type: 'integer', minimum: 0, default: 0 },
            limit: { type: 'integer', minimum: 1, maximum: 1000, default: 50 },
          },
        },
        response: {
          200: { type: 'object', properties: { total: { type: 'integer' }, items: { type: 'array', items: anyObject } } },
          ...errors,
        },
      },
    },
    async (req) => listAudit(coordinator.store, req.query),
  );

  // ---------------------------------------------------------------- agents and tokens
  app.get(
    '/api/v1/admin/agents',
    {
      ...base,
      schema: {
        tags: ['agents'],
        summary: 'Agent registry: last seen, work in flight, results per hour, version.',
        security,
        response: { 200: { type: 'object', properties: { agents: { type: 'array', items: anyObject } } }, ...errors },
      },
    },
    async () => ({ agents: (await coordinator.listAgents()).map(({ tokenHash: _h, ...rest }) => rest) }),
  );

  const nameBody = {
    type: 'object',
    additionalProperties: false,
    required: ['name'],
    properties: { name: { type: 'string', minLength: 1, maxLength: 64 } },
  } as const;
  const groupList = { type: 'array', maxItems: 64, items: { type: 'string', minLength: 1, maxLength: 64 } } as const;
  app.post(
    '/api/v1/admin/agents',
    {
      ...base,
      schema: {
        tags: ['agents'],
        summary: 'Register an agent, optionally in agent groups (vantage points); the token is returned once and stored only as a hash.',
        security,
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['name'],
          properties: { name: { type: 'string', minLength: 1, maxLength: 64 }, groups: groupList },
        },
        response: {
          200: {
            type: 'object',
            properties: {
              id: { type: 'string' },
              name: { type: 'string' },
              groups: { type: 'array', items: { type: 'string' } },
              token: { type: 'string' },
            },
          },
          ...errors,
        },
      },
    },
    async (req) => {
      return actions.createAgent(await actor(req), req.body.name, req.body.groups ?? []);
    },
  );

  app.put(
    '/api/v1/admin/agents/:id/groups',
    {
      ...base,
      schema: {
        tags: ['agents'],
        summary:
          "Replace an agent's groups (an empty list removes them); work for a tag whose policy names groups goes only to their agents.",
        security,
        params: { type: 'object', required: ['id'], properties: { id: { type: 'string', maxLength: 64 } } },
        body: { type: 'object', additionalProperties: false, required: ['groups'], properties: { groups: groupList } },
        response: {
          200: { type: 'object', properties: { id: { type: 'string' }, groups: { type: 'array', items: { type: 'string' } } } },
          ...errors,
        },
      },
    },
    async (req) => ({ id: req.params.id, groups: await actions.setAgentGroups(await actor(req), req.params.id, req.body.groups) }),
  );

  app.delete(
    '/api/v1/admin/agents/:id',
    {
      ...base,
      schema: {
        tags: ['agents'],
        summary: 'Remove an agent (its token stops working; its live leases go back to the queue at once).',
        security,
        params: { type: 'object', required: ['id'], properties: { id: { type: 'string', maxLength: 64 } } },
        response: {
          200: { type: 'object', properties: { deleted: { type: 'boolean' }, released: { type: 'integer', minimum: 0 } } },
          ...errors,
        },
      },
    },
    async (req) => actions.deleteAgent(await actor(req), req.params.id),
  );

  app.post(
    '/api/v1/admin/tokens',
    {
      ...base,
      schema: {
        tags: ['agents'],
        summary: 'Create another admin token (returned once).',
        security,
        body: nameBody,
        response: {
          200: { type: 'object', properties: { id: { type: 'string' }, name: { type: 'string' }, token: { type: 'string' } } },
          ...errors,
        },
      },
    },
    async (req) => {
      const t = await actions.createAdminToken(await actor(req), req.body.name);
      return { id: t.id, name: t.name, token: t.token };
    },
  );

  app.get(
    '/api/v1/admin/tokens',
    {
      ...base,
      schema: {
        tags: ['agents'],
        summary: 'List admin tokens (id, name, created; never the tokens).',
        security,
        response: {
          200: {
            type: 'object',
            properties: {
              tokens: {
                type: 'array',
                items: { type: 'object', properties: { id: { type: 'string' }, name: { type: 'string' }, createdAt: { type: 'integer' } } },
              },
            },
          },
          ...errors,
        },
      },
    },
    async () => ({ tokens: (await coordinator.store.listAdminTokens()).map(({ id, name, createdAt }) => ({ id, name, createdAt })) }),
  );

  app.delete(
    '/api/v1/admin/tokens/:id',
    {
      ...base,
      schema: {
        tags: ['agents'],
        summary: 'Revoke an admin token (effective at once, including for the token making the request).',
        security,
        params: { type: 'object', required: ['id'], properties: { id: { type: 'string', maxLength: 64 } } },
        response: { 200: { type: 'object', properties: { deleted: { type: 'boolean' } } }, ...errors },
      },
    },
    async (req) => ({ deleted: await actions.revokeAdminToken(await actor(req), req.params.id) }),
  );
}
