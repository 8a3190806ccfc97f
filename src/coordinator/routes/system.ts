import type { RouteApp } from './types.js';
import { VERSION } from '../../core/index.js';
import type { Coordinator } from '../coordinator.js';

/** /healthz and /metrics (no token: meant for load balancers and Prometheus on a trusted network). */
export function registerSystemRoutes(app: RouteApp, coordinator: Coordinator): void {
  app.get(
    '/healthz',
    {
      schema: {
        tags: ['system'],
        summary: 'Liveness and a few figures.',
        response: {
          200: {
            type: 'object',
            properties: {
              status: { type: 'string' },
              version: { type: 'string' },
              store: { type: 'string' },
              cycle: { type: 'integer' },
              scopeAddresses: { type: 'string' },
              // With a search index (Elasticsearch) only: the outbox feeding it.
              outbox: {
                type: 'object',
                properties: {
                  depth: { type: 'integer' },
                  active: { type: 'boolean' },
                  fed: { type: 'integer' },
                  failures: { type: 'integer' },
                  failing: { type: 'integer' },
                  lastError: { type: 'string' },
                },
              },
            },
          },
        },
      },
    },
    async () => ({
      status: 'ok',
      version: VERSION,
      store: coordinator.store.kind,
      cycle: coordinator.progress().cycle,
      scopeAddresses: String(coordinator.addressSpace.size),
      ...(app.outboxFeeder ? { outbox: { depth: await app.outboxFeeder.depth(), ...app.outboxFeeder.status() } } : {}),
    }),
  );

  app.get(
    '/metrics',
    { schema: { tags: ['system'], summary: 'Prometheus metrics.', response: { 200: { type: 'string' } } } },
    async (_req, reply) => {
      reply.type(coordinator.metrics.registry.contentType);
      return coordinator.metrics.registry.metrics();
    },
  );
}
