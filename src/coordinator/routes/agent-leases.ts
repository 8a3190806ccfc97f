import type { RouteApp } from './types.js';
import { PortbanditError } from '../../core/index.js';
import { agentOf, requireRole } from '../auth.js';
import type { Coordinator } from '../coordinator.js';
import { MAX_ABANDONED_WORK_REQUESTS, MAX_RELEASE_BATCH, WORK_REQUEST_KEY, errorResponseSchema } from '../../protocol/index.js';

// An agent's word on the leases it holds but will not finish: refused (left to expire) or given
// back (queued again now).

const errors = {
  400: errorResponseSchema,
  401: errorResponseSchema,
  403: errorResponseSchema,
  409: errorResponseSchema,
  429: errorResponseSchema,
};

/**
 * `POST /api/v1/agent/refused`: an agent says it refused a work item (an address outside its
 * --allow, a malformed item) and why. The refusal is logged and counted; the lease is left to
 * expire (re-queueing it at once would hand the same item straight back).
 */
export function registerAgentRefusedRoute(app: RouteApp, coordinator: Coordinator): void {
  app.post(
    '/api/v1/agent/refused',
    {
      preParsing: requireRole(coordinator, 'agent'),
      schema: {
        tags: ['agent'],
        summary: 'Report a work item this agent refused to scan, with the reason (logged and counted; the lease expires).',
        security: [{ bearer: [] }],
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['leaseId', 'reason'],
          properties: { leaseId: { type: 'string', minLength: 1, maxLength: 64 }, reason: { type: 'string', maxLength: 1000 } },
        },
        response: { 200: { type: 'object', required: ['recorded'], properties: { recorded: { type: 'boolean' } } }, ...errors },
      },
    },
    async (req) => {
      const agent = agentOf(req);
      const lease = await coordinator.store.getLease(req.body.leaseId);
      if (!lease) throw new PortbanditError('PB_ERR_CONFLICT', `lease ${req.body.leaseId} is unknown or has expired`, { where: 'leaseId' });
      if (lease.agentId !== agent.id)
        throw new PortbanditError('PB_ERR_FORBIDDEN', `lease ${lease.id} was handed to another agent`, { where: 'leaseId' });
      coordinator.metrics.results.inc({ outcome: 'refused' });
      req.log.warn(
        { agent: agent.id, agentName: agent.name, lease: lease.id, ip: lease.ip, reason: req.body.reason },
        'agent refused a work item',
      );
      return { recorded: true };
    },
  );
}

/**
 * `POST /api/v1/agent/release`: an agent stopping before it finished its items gives their leases
 * back, so they are queued again now instead of when they expire (a lease is 15 minutes by
 * default: an agent restarted mid-cycle held its hosts that long). Only this agent's live leases
 * are released; ids it does not hold are counted out, not refused (one may have just expired).
 * `workRequests` names work requests whose answers the agent never got (the keys it would have
 * sent in `portbandit-work-abandoned` on its next request, had it not stopped): their leases,
 * unknown to the agent, go back too.
 */
export function registerAgentReleaseRoute(app: RouteApp, coordinator: Coordinator): void {
  app.post(
    '/api/v1/agent/release',
    {
      preParsing: requireRole(coordinator, 'agent'),
      schema: {
        tags: ['agent'],
        summary: 'Give back leases this agent will not finish: they are queued again now, not when they expire.',
        security: [{ bearer: [] }],
        body: {
          type: 'object',
          additionalProperties: false,
          minProperties: 1,
          properties: {
            leaseIds: { type: 'array', minItems: 1, maxItems: MAX_RELEASE_BATCH, items: { type: 'string', minLength: 1, maxLength: 64 } },
            workRequests: {
              type: 'array',
              minItems: 1,
              maxItems: MAX_ABANDONED_WORK_REQUESTS,
              items: { type: 'string', pattern: WORK_REQUEST_KEY.source },
            },
          },
        },
        response: { 200: { type: 'object', required: ['released'], properties: { released: { type: 'integer' } } }, ...errors },
      },
    },
    async (req) => {
      const agent = agentOf(req);
      const { leaseIds = [], workRequests = [] } = req.body;
      let released = leaseIds.length > 0 ? await coordinator.releaseLeases(agent.id, leaseIds) : 0;
      released += await coordinator.releaseAbandoned(agent.id, workRequests);
      req.log.info(
        { agent: agent.id, agentName: agent.name, asked: leaseIds.length, workRequests: workRequests.length, released },
        'agent gave leases back',
      );
      return { released };
    },
  );
}
