import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify';
import rateLimit from '@fastify/rate-limit';
import type { RequestTypeProvider } from './routes/types.js';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { PortCatalog } from '../catalog/index.js';
import { errorCodes, isPortbanditError, VERSION } from '../core/index.js';
import { IndexedStore, OutboxFeeder, type Store } from '../store/index.js';
import { serverAjvOptions, sharedSerializerCompiler, sharedValidatorCompiler } from './ajv-options.js';
import { retryAfterSeconds } from './overload.js';
import { resolvePrincipal } from './auth.js';
import { type CoordinatorConfig, configDefaults } from './config.js';
import { openCoordinatorCore } from './open-core.js';
import { AlertDispatcher, type AlertDeliveryOptions } from './alerts.js';
import { registerAdminRoutes } from './routes/admin.js';
import { registerAlertRoutes } from './routes/alerts.js';
import { registerAgentRoutes } from './routes/agent.js';
import { registerAgentRefusedRoute, registerAgentReleaseRoute } from './routes/agent-leases.js';
import { registerResultRoutes } from './routes/results.js';
import { registerScreenshotRoutes } from './routes/screenshots.js';
import { registerSystemRoutes } from './routes/system.js';
import { registerRetentionRoutes } from './routes/retention.js';
import { type NameResolver, createResolver } from './names.js';
import type { Coordinator } from './coordinator.js';
import type { RetentionRunner } from './retention-runner.js';
import { uiRoutes } from './ui/index.js';

/** What `buildApp` needs; everything but the config has a production default. */
export interface AppOptions {
  /** Resolved configuration (resolveConfig); defaults when absent. */
  readonly config?: CoordinatorConfig;
  /** An open store; default: SQLite at `<dataDir>/portbandit.db` (closed with the app). */
  readonly store?: Store;
  /** nmap's port catalog; default: the installed nmap-services. */
  readonly catalog?: PortCatalog;
  /** The clock (ms since the epoch); tests move time by hand. */
  readonly now?: () => number;
  /** fastify/pino logger options; default from config.logLevel. */
  readonly logger?: FastifyServerOptions['logger'];
  /** Run the periodic sweep (lease expiry, flushes) on a timer; default true. */
  readonly sweepTimer?: boolean;
  /** Alert delivery: retries, backoff, time-outs (defaults in AlertDispatcher). */
  readonly alerts?: AlertDeliveryOptions;
  /**
   * Resolves the scope's DNS names. Default: `config.resolver` when the app serves (sweepTimer
   * on); none otherwise, so a CLI command on a data directory never sends a DNS query.
   */
  readonly resolver?: NameResolver;
}

declare module 'fastify' {
  interface FastifyInstance {
    coordinator: Coordinator;
    /** Delivers alert rules' matches; runs on the sweep timer, or by hand (`runOnce`) in tests. */
    alerts: AlertDispatcher;
    /** History retention: background passes on the sweep timer, `run` on demand (dry run too). */
    retention: RetentionRunner;
    /** Carries the outbox into the Elasticsearch index (a store with one); started when the app serves. */
    outboxFeeder: OutboxFeeder | undefined;
  }
}

/** How often the alert dispatcher looks for new events. */
const ALERT_INTERVAL_MS = 1000;

export { databasePath } from './open-core.js';

/**
 * Build the coordinator app: store, core, plugins (OpenAPI, rate limiting on auth failures)
 * and routes. Does not listen (server.ts does); tests use `app.inject()` or `listen({port: 0})`.
 */
export async function buildApp(options: AppOptions = {}): Promise<FastifyInstance> {
  const config = options.config ?? configDefaults;
  const now = options.now ?? Date.now;
  const app = Fastify({
    logger: options.logger ?? { level: config.logLevel },
    bodyLimit: config.bodyLimitBytes,
    // Bench and agents use keep-alive; the defaults are fine, but never hang on a dead client.
    requestTimeout: 120_000,
    ajv: { customOptions: { ...serverAjvOptions } },
    // One validator and one serializer compiler per process (see ajv-options.ts): later apps reuse what the first compiled.
    schemaController: { compilersFactory: { buildValidator: sharedValidatorCompiler, buildSerializer: sharedSerializerCompiler } },
  });
  const resolver = options.resolver ?? ((options.sweepTimer ?? true) ? createResolver(config.resolver) : undefined);
  const core = await openCoordinatorCore({
    config,
    ...(options.store ? { store: options.store } : {}),
    ...(options.catalog ? { catalog: options.catalog } : {}),
    now,
    log: app.log,
    ...(resolver ? { resolver } : {}),
  });
  const { store, coordinator, retention, metrics } = core;
  app.decorate('coordinator', coordinator);
  const alerts = new AlertDispatcher(store, { now, log: (message) => app.log.warn(message), ...options.alerts });
  app.decorate('alerts', alerts);
  app.decorate('retention', retention);
  // SQLite or PostgreSQL with an Elasticsearch index: one feeder per deployment (the role holder)
  // carries the outbox into it; every ingest wakes it.
  const feeder =
    store instanceof IndexedStore
      ? new OutboxFeeder(store, store.searchIndex, { log: (level, message, err) => app.log[level]({ err }, message) })
      : undefined;
  if (feeder && store instanceof IndexedStore) store.onOutbox = () => feeder.wake();
  app.decorate('outboxFeeder', feeder);
  metrics.bind({
    leasesInFlight: () => store.countLeases(),
    // The store lists at most 10,000 queued items; the gauge saturates there.
    queueLength: async () => (await store.listQueuedWork(10_000)).length,
    cycle: () => coordinator.progress(),
    cycleCoverage: () => coordinator.cycleCoverage(),
    cycleVisitsFinished: () => coordinator.cycleVisitsFinished(),
    estimatedCoverage: () => coordinator.estimatedCoverage(),
    ...(feeder ? { outbox: async () => ({ depth: await feeder.depth(), ...feeder.status() }) } : {}),
  });

  app.setErrorHandler((error, request, reply) => {
    if (isPortbanditError(error)) {
      if (error.statusCode === 503) {
        // Overload (PB_ERR_STORE_BUSY): nothing was stored; the client is told when to come back.
        request.log.warn({ err: error }, error.message);
        return reply
          .status(503)
          .header('retry-after', String(retryAfterSeconds()))
          .send({
            statusCode: 503,
            code: error.code,
            error: error.name,
            message: `${errorCodes[error.code].summary} (details in the server log)`,
          });
      }
      if (error.statusCode >= 500) {
        // A server-side failure's message can name files (the database path) or internals:
        // the log gets it, the client gets the code and its summary only.
        request.log.error({ err: error }, error.message);
        return reply.status(error.statusCode).send({
          statusCode: error.statusCode,
          code: error.code,
          error: error.name,
          message: `${errorCodes[error.code].summary} (details in the server log)`,
        });
      }
      return reply
        .status(error.statusCode)
        .send({ statusCode: error.statusCode, code: error.code, error: error.name, message: error.message });
    }
    const err = error as { validation?: unknown; validationContext?: string; statusCode?: number; code?: string; message: string };
    if (err.validation) {
      return reply.status(400).send({
        statusCode: 400,
        code: 'PB_ERR_SCHEMA',
        error: 'Bad Request',
        message: `${err.message} (request ${err.validationContext ?? 'body'})`,
      });
    }
    const status = err.statusCode && err.statusCode >= 400 ? err.statusCode : 500;
    if (status >= 500) request.log.error({ err: error }, 'request failed');
    return reply.status(status).send({
      statusCode: status,
      code: err.code ?? 'PB_ERR_INTERNAL',
      error: status >= 500 ? 'Internal Server Error' : 'Error',
      message: status >= 500 ? 'internal error (see the server log)' : err.message,
    });
  });

  await app.register(swagger, {
    openapi: {
      info: {
        title: 'portbandit coordinator',
        version: VERSION,
        description: 'Scope, cyclic work distribution with leases, learned port sets per tag, results, search and history.',
      },
      components: {
        securitySchemes: {
          bearer: { type: 'http', scheme: 'bearer', description: 'An agent token (pba_...) or an admin token (pbk_...).' },
        },
      },
    },
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });

  // Only requests without a valid token count: agents and admins are never throttled, a token
  // guesser is (authFailuresPerMinute per client address).
  await app.register(rateLimit, {
    global: true,
    max: config.authFailuresPerMinute,
    timeWindow: 60_000,
    allowList: async (req) => {
      const url = req.url;
      if (url.startsWith('/healthz') || url.startsWith('/metrics') || url.startsWith('/docs')) return true;
      return (await resolvePrincipal(req, coordinator)) !== null;
    },
    errorResponseBuilder: (_req, context) => ({
      statusCode: 429,
      code: 'PB_ERR_RATE_LIMITED',
      error: 'Too Many Requests',
      message: `too many requests without a valid token; retry in ${Math.ceil(context.ttl / 1000)} s`,
    }),
  });

  await app.register(async (untyped) => {
    const scope = untyped.withTypeProvider<RequestTypeProvider>();
    registerSystemRoutes(scope, coordinator);
    registerAgentRoutes(scope, coordinator);
    registerAgentRefusedRoute(scope, coordinator);
    registerAgentReleaseRoute(scope, coordinator);
    registerAdminRoutes(scope, coordinator);
    registerResultRoutes(scope, coordinator);
    registerAlertRoutes(scope, coordinator);
    registerScreenshotRoutes(scope, coordinator);
    registerRetentionRoutes(scope, coordinator, retention);
  });
  await app.register(uiRoutes, { coordinator, retention });

  let timer: NodeJS.Timeout | undefined;
  let alertTimer: NodeJS.Timeout | undefined;
  let retentionTimer: NodeJS.Timeout | undefined;
  if (options.sweepTimer ?? true) {
    // One bounded step (100 hosts) per sweep interval while a pass runs; a pass starts hourly.
    retentionTimer = setInterval(() => {
      retention.step().catch((error: unknown) => app.log.error({ err: error }, 'retention step failed'));
    }, config.sweepIntervalMs);
    retentionTimer.unref();
    timer = setInterval(() => {
      coordinator.sweep({ learn: false }).catch((error: unknown) => app.log.error({ err: error }, 'sweep failed'));
    }, config.sweepIntervalMs);
    timer.unref();
    // Alert delivery follows the events; runOnce joins a pass that is still delivering.
    alertTimer = setInterval(() => {
      alerts.runOnce().catch((error: unknown) => app.log.error({ err: error }, 'alert delivery failed'));
    }, ALERT_INTERVAL_MS);
    alertTimer.unref();
    feeder?.start();
  }
  app.addHook('preClose', async () => {
    coordinator.beginClose();
  });
  app.addHook('onClose', async () => {
    if (timer) clearInterval(timer);
    if (alertTimer) clearInterval(alertTimer);
    if (retentionTimer) clearInterval(retentionTimer);
    await alerts.stop();
    // The feeder stops after the coordinator's last writes; what is not fed yet stays in the
    // outbox for the next start.
    await core.close(async () => feeder?.stop());
  });
  return app;
}
