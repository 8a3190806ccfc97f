import type { RouteApp } from './types.js';
import { AdminActions } from '../admin-actions.js';
import { listAlertRules, listDeadLetters } from '../alerts.js';
import { requireRole } from '../auth.js';
import type { Coordinator } from '../coordinator.js';
import { errorResponseSchema } from '../../protocol/index.js';
import { apiActor } from './admin.js';

const errors = {
  400: errorResponseSchema,
  401: errorResponseSchema,
  403: errorResponseSchema,
  404: errorResponseSchema,
  409: errorResponseSchema,
  429: errorResponseSchema,
};
const rule = {
  type: 'object',
  properties: {
    name: { type: 'string' },
    query: { type: 'string' },
    url: { type: 'string' },
    createdAt: { type: 'integer' },
    cursor: { type: 'string' },
  },
} as const;
const deadLetter = {
  type: 'object',
  properties: {
    id: { type: 'string' },
    rule: { type: 'string' },
    url: { type: 'string' },
    event: { type: 'object', additionalProperties: true },
    attempts: { type: 'integer' },
    error: { type: 'string' },
    failedAt: { type: 'integer' },
  },
} as const;

/** Alert rules (an event query and a webhook) and the dead letters of failed deliveries. */
export function registerAlertRoutes(app: RouteApp, coordinator: Coordinator): void {
  const base = { preParsing: requireRole(coordinator, 'admin') } as const;
  const security = [{ bearer: [] }];
  const store = coordinator.store;
  const actions = new AdminActions(coordinator);

  app.get(
    '/api/v1/admin/alerts',
    {
      ...base,
      schema: {
        tags: ['alerts'],
        summary: 'List the alert rules.',
        security,
        response: { 200: { type: 'object', properties: { rules: { type: 'array', items: rule } } }, ...errors },
      },
    },
    async () => ({
      rules: await listAlertRules(store),
    }),
  );

  app.post(
    '/api/v1/admin/alerts',
    {
      ...base,
      schema: {
        tags: ['alerts'],
        summary:
          'Create an alert rule: events after now that match `query` (an event query: kind:service-new port:3389 tag:dmz) are POSTed to `url`, with retries, then dead-lettered.',
        security,
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['name', 'query', 'url'],
          properties: {
            name: { type: 'string', maxLength: 64 },
            query: { type: 'string', maxLength: 4096 },
            url: { type: 'string', maxLength: 2048 },
          },
        },
        response: { 200: rule, ...errors },
      },
    },
    async (req) => {
      const made = await actions.addAlertRule(await apiActor(coordinator, req), req.body);
      req.log.info({ rule: made.name, url: made.url }, 'alert rule created');
      return made;
    },
  );

  app.delete(
    '/api/v1/admin/alerts/:name',
    {
      ...base,
      schema: {
        tags: ['alerts'],
        summary: 'Delete an alert rule (its dead letters stay).',
        security,
        params: { type: 'object', required: ['name'], properties: { name: { type: 'string', maxLength: 64 } } },
        response: { 200: { type: 'object', properties: { removed: { type: 'string' } } }, ...errors },
      },
    },
    async (req) => {
      await actions.removeAlertRule(await apiActor(coordinator, req), req.params.name);
      return { removed: req.params.name };
    },
  );

  app.get(
    '/api/v1/admin/alerts/dead',
    {
      ...base,
      schema: {
        tags: ['alerts'],
        summary: 'Events a rule could not deliver after every retry.',
        security,
        response: { 200: { type: 'object', properties: { deadLetters: { type: 'array', items: deadLetter } } }, ...errors },
      },
    },
    async () => ({ deadLetters: await listDeadLetters(store) }),
  );
}
