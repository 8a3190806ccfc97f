import type { FastifyInstance } from 'fastify';
import { agentOf, requireRole } from '../auth.js';
import type { Coordinator } from '../coordinator.js';
import { type ResultSubmission, errorResponseSchema, resultSubmissionSchema, submitResponseSchema, workResponseSchema } from '../protocol.js';

const errors = { 400: errorResponseSchema, 401: errorResponseSchema, 403: errorResponseSchema, 409: errorResponseSchema, 429: errorResponseSchema };

/** The agent protocol: pull work, submit results. */
export function registerAgentRoutes(app: FastifyInstance, coordinator: Coordinator): void {
  const auth = requireRole(coordinator, 'agent');
  const security = [{ bearer: [] }];

  app.get<{ Querystring: { version?: string } }>(
    '/api/v1/agent/work',
    {
      preParsing: auth,
      schema: {
        tags: ['agent'],
        summary: 'Lease the next work item (a host, its ports and scan options), or null when there is none.',
        security,
        querystring: { type: 'object', additionalProperties: false, properties: { version: { type: 'string', maxLength: 64 } } },
        response: { 200: workResponseSchema, ...errors },
      },
    },
    async (req) => {
      const work = await coordinator.getWork(agentOf(req), req.query.version);
      return work ? { work } : { work: null, retryAfterMs: coordinator.config.retryAfterMs };
    },
  );

  app.post<{ Body: ResultSubmission }>(
    '/api/v1/agent/results',
    {
      preParsing: auth,
      schema: {
        tags: ['agent'],
        summary: 'Submit the result of a leased work item (idempotent per lease).',
        security,
        body: resultSubmissionSchema,
        response: { 200: submitResponseSchema, ...errors },
      },
    },
    async (req) => coordinator.submit(agentOf(req), req.body),
  );
}
