import type { FastifyInstance } from 'fastify';
import { PortbanditError } from '../core/index.js';
import { type AppOptions, buildApp } from './app.js';
import type { CoordinatorConfig } from './config.js';
import { generateId, generateToken, hashToken } from './tokens.js';

/** Start the coordinator: build the app, create the bootstrap admin token on first start, listen. */
export async function startServer(
  config: CoordinatorConfig,
  options: Omit<AppOptions, 'config'> = {},
  stderr: NodeJS.WritableStream = process.stderr,
): Promise<FastifyInstance> {
  const app = await buildApp({ ...options, config });
  try {
    try {
      await app.listen({ host: config.host, port: config.port });
    } catch (cause) {
      const code = (cause as NodeJS.ErrnoException).code;
      if (code === 'EADDRINUSE' || code === 'EACCES' || code === 'EADDRNOTAVAIL') {
        const why =
          code === 'EADDRINUSE'
            ? 'is already in use (another portbandit serve?)'
            : code === 'EACCES'
              ? 'needs privileges this process lacks'
              : 'is not an address of this machine';
        throw new PortbanditError(
          'PB_ERR_IO',
          `cannot listen on ${config.host}:${config.port}: the port ${why}; choose another with --port or PORTBANDIT_PORT`,
          { where: '--port', cause },
        );
      }
      throw cause;
    }
    // Only once listening: a token created by a start that then failed would never be shown.
    const bootstrap = await bootstrapAdminToken(app);
    const address = app.server.address();
    const port = typeof address === 'object' && address ? address.port : config.port;
    const base = `http://${config.host.includes(':') ? `[${config.host}]` : config.host}:${port}`;
    // How the CLI reaches this coordinator's store: its data directory, or (PostgreSQL) the
    // database, whose URL is not repeated here (it may hold a password).
    const cliStore = config.postgresUrl ? 'PORTBANDIT_POSTGRES_URL=<postgres-url> portbandit' : undefined;
    const urlNote = '(<postgres-url>: the --postgres URL this coordinator was started with, not repeated here: it may hold a password)';
    if (bootstrap) {
      stderr.write(
        [
          '',
          'portbandit: first start: an admin token was created. It is shown ONCE and stored only as a hash:',
          '',
          `  ${bootstrap}`,
          '',
          'Register a scanning agent (prints the agent token once):',
          cliStore ? `  ${cliStore} token create --agent NAME` : `  portbandit token create --agent NAME --data ${config.dataDir}`,
          `  or: curl -s -X POST ${base}/api/v1/admin/agents -H "Authorization: Bearer <admin token>" -H 'content-type: application/json' -d '{"name":"agent-1"}'`,
          'Add scope:',
          cliStore
            ? `  ${cliStore} scope add 198.18.0.0/24 --tag lab`
            : `  portbandit scope add 198.18.0.0/24 --tag lab --data ${config.dataDir}`,
          ...(cliStore ? [urlNote] : []),
          `API docs: ${base}/docs`,
          '',
        ].join('\n'),
      );
    } else {
      const where = config.postgresUrl
        ? `in the shared PostgreSQL store (created by the first coordinator to start)`
        : `in ${config.dataDir}`;
      stderr.write(
        `portbandit: coordinator listening on ${base} (an admin token exists ${where}; API docs at ${base}/docs; lost the admin token? ${cliStore ? `${cliStore} token create --admin NAME` : `portbandit token create --admin NAME --data ${config.dataDir}`})\n`,
      );
    }
    return app;
  } catch (error) {
    await app.close();
    throw error;
  }
}

/**
 * Create the first admin token when none exists; returns it (to print once), else undefined.
 * Atomic in the store: of several coordinators starting on one empty database, one prints it.
 */
export async function bootstrapAdminToken(app: FastifyInstance): Promise<string | undefined> {
  const coordinator = app.coordinator;
  if ((await coordinator.store.listAdminTokens()).length > 0) return undefined;
  const token = generateToken('admin');
  const created = await coordinator.store.createFirstAdminToken({
    id: generateId('admin'),
    name: 'bootstrap',
    tokenHash: hashToken(token),
    createdAt: coordinator.now(),
  });
  return created ? token : undefined;
}

/** Close the app on SIGINT/SIGTERM (flushing cycle position and learned state first). */
export function closeOnSignals(app: FastifyInstance): void {
  let closing = false;
  const stop = (signal: string) => {
    if (closing) return;
    closing = true;
    app.log.info({ signal }, 'shutting down');
    app.close().then(
      () => process.exit(0),
      (error: unknown) => {
        app.log.error({ err: error }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.once('SIGINT', () => stop('SIGINT'));
  process.once('SIGTERM', () => stop('SIGTERM'));
}
