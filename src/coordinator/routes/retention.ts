import type { RouteApp } from './types.js';
import { requireRole } from '../auth.js';
import type { Coordinator } from '../coordinator.js';
import { errorResponseSchema } from '../../protocol/index.js';
import type { RetentionRunner } from '../retention-runner.js';
import { AdminActions } from '../admin-actions.js';
import { apiActor } from './admin.js';

const errors = { 400: errorResponseSchema, 401: errorResponseSchema, 403: errorResponseSchema, 429: errorResponseSchema };

const report = {
  type: 'object',
  properties: {
    dryRun: { type: 'boolean' },
    startedAt: { type: 'integer' },
    finishedAt: { type: 'integer' },
    hosts: { type: 'integer' },
    visits: { type: 'integer' },
    kept: { type: 'integer' },
    dropped: { type: 'integer' },
    protectedVisits: { type: 'integer' },
    byPolicy: {
      type: 'array',
      items: { type: 'object', properties: { tag: { type: 'string' }, kept: { type: 'integer' }, dropped: { type: 'integer' } } },
    },
    sample: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          scanId: { type: 'string' },
          ip: { type: 'string' },
          finishedAt: { type: 'integer' },
          tags: { type: 'array', items: { type: 'string' } },
        },
      },
    },
  },
} as const;

/** History retention: the dry-run report, and a pass applied now (the background pass runs on the sweep timer). */
export function registerRetentionRoutes(app: RouteApp, coordinator: Coordinator, runner: RetentionRunner): void {
  const base = { preParsing: requireRole(coordinator, 'admin') } as const;
  const security = [{ bearer: [] }];
  app.get(
    '/api/v1/admin/retention',
    {
      ...base,
      schema: {
        tags: ['policy'],
        summary: "Dry run of the policies' retention rules: what a pass would keep and drop now (nothing is deleted).",
        security,
        response: { 200: report, ...errors },
      },
    },
    async () => runner.run({ dryRun: true }),
  );
  app.post(
    '/api/v1/admin/retention/run',
    {
      ...base,
      schema: {
        tags: ['policy'],
        summary: 'Apply the retention rules now (a whole pass); returns what was kept and dropped.',
        security,
        response: { 200: report, ...errors },
      },
    },
    async (req) => {
      const done = await runner.run({ dryRun: false });
      req.log.info({ dropped: done.dropped, kept: done.kept, hosts: done.hosts }, 'retention pass run by an admin');
      await new AdminActions(coordinator).recordRetentionRun(await apiActor(coordinator, req), done);
      return done;
    },
  );
}
