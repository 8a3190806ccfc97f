import type { RouteApp } from './types.js';
import { agentOf, requireRole } from '../auth.js';
import type { Coordinator } from '../coordinator.js';
import {
  MAX_WORK_BATCH,
  MAX_WORK_BATCH_PORTS,
  WORK_FEATURES_HEADER,
  WORK_FEATURE_PORT_RANGES,
  WORK_FEATURE_LIKELY_PORTS,
  WORK_FEATURE_SILENT_ROUNDS,
  WORK_FEATURE_SKIP_SILENT,
  MAX_ABANDONED_WORK_REQUESTS,
  WORK_ABANDONED_HEADER,
  WORK_REQUEST_HEADER,
  WORK_REQUEST_KEY,
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
import type { Agent } from '../../store/index.js';
import type { FastifyReply, FastifyRequest } from 'fastify';

/** The ports a work item hands out, in either form. */
function portCount(item: WorkItem): number {
  return item.portRanges !== undefined ? PortRanges.parse(item.portRanges).size : item.ports.length;
}

/**
 * Whether the agent has gone: its connection closed, or it sent its end of it (an HTTP client
 * half-closes only when it gave up: its time-out aborted the request while this coordinator was
 * stalled, and the answer would go nowhere).
 */
function agentGone(req: FastifyRequest): boolean {
  const socket = req.raw.socket;
  return socket === null || socket.destroyed || socket.readableEnded;
}

/**
 * Leases an answer may never reach: when the agent has gone before or while the answer is sent,
 * they are given back at once (queued again, as `POST /api/v1/agent/release` does) rather than
 * held until they expire (15 minutes by default) while no one scans them.
 */
function releaseIfUndelivered(
  coordinator: Coordinator,
  agent: Agent,
  items: readonly WorkItem[],
  req: FastifyRequest,
  reply: FastifyReply,
): void {
  const release = (when: string): void => {
    const ids = items.map((item) => item.leaseId);
    coordinator.releaseLeases(agent.id, ids).then(
      (released) =>
        req.log.warn(
          { agent: agent.id, agentName: agent.name, leases: ids.length, released, when },
          'agent gone before its work answer: leases given back',
        ),
      (error: unknown) => req.log.error({ agent: agent.id, err: error }, 'could not give back the leases of an undelivered work answer'),
    );
  };
  if (agentGone(req)) return release('before the answer');
  // 'finish': the whole answer went to the operating system (`writableFinished` also wants the
  // socket's buffer empty, which fastify's in-process `inject` has no socket to say).
  let finished = false;
  reply.raw.once('finish', () => (finished = true));
  // Also when the connection closes first (Node's server then closes the answer too).
  reply.raw.once('close', () => {
    if (!finished) release('while the answer was sent');
  });
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
        // `silent-rounds`: items may carry `silent`); the request's key, and the keys of this
        // agent's earlier requests that went unanswered (their leases are given back first;
        // protocol.ts).
        headers: {
          type: 'object',
          properties: {
            [WORK_FEATURES_HEADER]: { type: 'string', maxLength: 200 },
            [WORK_REQUEST_HEADER]: { type: 'string', pattern: WORK_REQUEST_KEY.source },
            [WORK_ABANDONED_HEADER]: {
              type: 'string',
              maxLength: MAX_ABANDONED_WORK_REQUESTS * 65,
              pattern: `^${WORK_REQUEST_KEY.source.slice(1, -1)}(,${WORK_REQUEST_KEY.source.slice(1, -1)}){0,${MAX_ABANDONED_WORK_REQUESTS - 1}}$`,
            },
          },
        },
        response: { 200: workResponseSchema, ...errors },
      },
    },
    async (req, reply) => {
      const max = req.query.max ?? 1;
      const agent = agentOf(req);
      // An agent that gave up waiting (a stalled coordinator) is not handed leases it never sees.
      if (agentGone(req)) return { work: null, ...(max > 1 ? { items: [] } : {}), retryAfterMs: coordinator.config.retryAfterMs };
      const features = (req.headers[WORK_FEATURES_HEADER] ?? '').split(',').map((f) => f.trim());
      const portRanges = features.includes(WORK_FEATURE_PORT_RANGES);
      const silentRounds = features.includes(WORK_FEATURE_SILENT_ROUNDS);
      const likelyPorts = features.includes(WORK_FEATURE_LIKELY_PORTS);
      const skipSilent = features.includes(WORK_FEATURE_SKIP_SILENT);
      const requestKey = req.headers[WORK_REQUEST_HEADER];
      const abandoned = req.headers[WORK_ABANDONED_HEADER];
      if (abandoned !== undefined) {
        const keys = abandoned.split(',');
        const released = await coordinator.releaseAbandoned(agent.id, keys);
        if (released > 0)
          req.log.warn(
            { agent: agent.id, agentName: agent.name, requests: keys.length, released },
            'leases of unanswered work requests given back',
          );
      }
      const items = await coordinator.getWorkBatch(agent, max, req.query.version, {
        portRanges,
        silentRounds,
        likelyPorts,
        skipSilent,
        ...(typeof requestKey === 'string' ? { requestKey } : {}),
      });
      if (items.length > 0) releaseIfUndelivered(coordinator, agent, items, req, reply);
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
