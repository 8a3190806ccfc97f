import type { Command } from 'commander';
import { closeOnSignals, resolveConfig, startServer } from '../../coordinator/index.js';
import { parseInteger } from '../options.js';
import { PortbanditError } from '../../core/errors.js';

interface ServeFlags {
  host?: string;
  port?: number;
  data?: string;
  config?: string;
  leaseSeconds?: number;
  logLevel?: string;
  elasticsearch?: string;
  elasticsearchPrefix?: string;
  screenshotBudget?: number;
  resolver?: string;
  dns?: string;
  postgres?: string;
  postgresSchema?: string;
}

/** Registers `portbandit serve`: the coordinator (fastify + embedded SQLite). */
export function registerServe(program: Command): void {
  program
    .command('serve')
    .description('Run the coordinator: scope, cyclic work distribution, learned port sets per tag, results, search (SQLite under --data).')
    .option('--host <host>', 'listen address (env PORTBANDIT_HOST; default 127.0.0.1)')
    .option('--port <n>', 'listen port (env PORTBANDIT_PORT; default 8080)', parseInteger(0, 65535))
    .option('--data <dir>', 'data directory (env PORTBANDIT_DATA; default ./data)')
    .option('--config <file>', 'JSON config file (env PORTBANDIT_CONFIG); flags and env override it')
    .option('--lease-seconds <n>', 'seconds an agent has to submit a work item (default 900)', parseInteger(1))
    .option('--log-level <level>', 'pino log level (default info)')
    .option('--elasticsearch <url>', 'also index results in this Elasticsearch cluster for search, fed from the store\'s outbox; coordination stays in SQLite or PostgreSQL (env PORTBANDIT_ELASTICSEARCH_URL)')
    .option('--elasticsearch-prefix <prefix>', 'index name prefix (env PORTBANDIT_ELASTICSEARCH_PREFIX; default portbandit)')
    .option('--screenshot-budget <bytes>', 'total bytes of web screenshots kept under --data, oldest dropped first (env PORTBANDIT_SCREENSHOT_BUDGET; default 1 GiB)', parseInteger(0, 2 ** 40))
    .option('--resolver <spec>', 'how scope names resolve: system (default), hosts:FILE (an /etc/hosts-style file) or dns:ADDRESS:PORT (env PORTBANDIT_RESOLVER)')
    .option('--dns <address:port>', 'resolve scope names with this DNS server, e.g. 127.0.0.1:5353 (same as --resolver dns:ADDRESS:PORT)')
    .option('--postgres <url>', 'keep the store in this PostgreSQL database, shared by every coordinator given the same URL; combines with --elasticsearch (env PORTBANDIT_POSTGRES_URL)')
    .option('--postgres-schema <name>', 'schema in that database (env PORTBANDIT_POSTGRES_SCHEMA; default portbandit)')
    .action(async (flags: ServeFlags) => {
      if (flags.resolver !== undefined && flags.dns !== undefined) throw new PortbanditError('PB_ERR_FLAG_CONFLICT', 'give either --resolver or --dns, not both', { where: '--dns' });
      const resolver = flags.dns !== undefined ? `dns:${flags.dns}` : flags.resolver;
      const config = resolveConfig({
        flags: { host: flags.host, port: flags.port, dataDir: flags.data, leaseSeconds: flags.leaseSeconds, logLevel: flags.logLevel,
          elasticsearchUrl: flags.elasticsearch, elasticsearchPrefix: flags.elasticsearchPrefix, screenshotBudgetBytes: flags.screenshotBudget, resolver, postgresUrl: flags.postgres, postgresSchema: flags.postgresSchema },
        env: process.env,
        ...(flags.config !== undefined ? { file: flags.config } : {}),
      });
      const app = await startServer(config);
      closeOnSignals(app);
      // Keep the action pending until the server closes so commander does not return early.
      await new Promise<void>((resolve) => app.server.once('close', () => resolve()));
    });
}
