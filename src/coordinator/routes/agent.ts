import type { RouteApp } from './types.js';
import { agentOf, requireRole } from '../auth.js';
import type { Coordinator } from '../coordinator.js';
import {
  MAX_WORK_BATCH,
  MAX_WORK_BATCH_PORTS,
  WORK_FEATURES_HEADER,
  WORK_FEATURE_PORT_RANGES,
  WORK_FEATURE_SILENT_ROUNDS,
  type WorkItem,
  errorResponseSchema,
  resultBatchResponseSchema,
  resultBatchSchema,
  resultSubmissionSchema,
  submitResponseSchema,
  workResponseSchema,
} from '../../protocol/index.js';
import { submitResultBatch } from '../result-batch.js';
import { retryAfterSeconds } from '../overload.js';
import { PortRanges } from '../../core/index.js';

/** The ports a work item hands out, in either form. */
function portCount(item: WorkItem): number {
  return item.portRanges !== undefined ? PortRanges.parse(item.portRanges).size : item.ports.length;
}

const errors = {
  400: errorResponseSchema,
  401: errorResponseSchema,
  403: errorResponseSchema,
  409: errorResponseSchema,
  429: errorResponseSchema,
  // The store is overloaded (PB_ERR_STORE_BUSY), with a Retry-After header.
  503: errorResponseSchema,
};

/** The agent protocol: pull work, submit results (one at a time or in batches). */
export function registerAgentRoutes(app: RouteApp, coordinator: Coordinator): void {
  const auth = requireRole(coordinator, 'agent');
  const security = [{ bearer: [] }];

  app.get(
    '/api/v1/agent/work',
    {
      preParsing: auth,
      schema: {
        tags: ['agent'],
        summary:
          'Lease the next work item (a host, its ports and scan options), or null when there is none; with max > 1, up to max items at once in `items`.',
        security,
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: { version: { type: 'string', maxLength: 64 }, max: { type: 'integer', minimum: 1, maximum: MAX_WORK_BATCH } },
        },
        // Optional: the wire features the agent reads (`port-ranges`: items carry `portRanges`;
        // `silent-rounds`: items may carry `silent`).
        headers: { type: 'object', properties: { [WORK_FEATURES_HEADER]: { type: 'string', maxLength: 200 } } },
        response: { 200: workResponseSchema, ...errors },
      },
    },
    async (req) => {
      const max = req.query.max ?? 1;
      const features = (req.headers[WORK_FEATURES_HEADER] ?? '').split(',').map((f) => f.trim());
      const portRanges = features.includes(WORK_FEATURE_PORT_RANGES);
      const silentRounds = features.includes(WORK_FEATURE_SILENT_ROUNDS);
      const items = await coordinator.getWorkBatch(agentOf(req), max, req.query.version, { portRanges, silentRounds });
      const none = items.length === 0 ? { retryAfterMs: coordinator.config.retryAfterMs } : {};
      // max 1 (or absent): exactly the single-item answer older agents read.
      if (max === 1) return { work: items[0] ?? null, ...none };
      // Cut short by the ports cap (Leasing.getWorkBatch): the agent asks again at once.
      const more = items.length < max && items.reduce((n, item) => n + portCount(item), 0) >= MAX_WORK_BATCH_PORTS;
      return { work: items[0] ?? null, items, ...none, ...(more ? { more } : {}) };
    },
  );

  app.post(
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

  app.post(
    '/api/v1/agent/results/batch',
    {
      preParsing: auth,
      schema: {
        tags: ['agent'],
        summary:
          'Submit up to 64 results in one request: each is answered on its own (accepted, duplicate, rejected or failed), in order; their ingests share one store commit.',
        security,
        body: resultBatchSchema,
        response: { 200: resultBatchResponseSchema, ...errors },
      },
    },
    async (req, reply) => {
      const results = await submitResultBatch(coordinator, agentOf(req), req.body.results, req.log);
      // A result the overloaded store could not take (503): the agent is told when to send it again.
      if (results.some((r) => r.outcome === 'failed' && r.error?.statusCode === 503))
        reply.header('retry-after', String(retryAfterSeconds()));
      return { results };
    },
  );
}
