import type { FastifyInstance } from 'fastify';
import { buildApp } from './app.js';
import { resolveConfig } from './config.js';

/**
 * Open the coordinator of a data directory in this process, without listening: what the CLI's
 * `scope`, `token`, `policy`, `search` and `host` commands work on. SQLite (WAL) lets them run
 * next to a live `portbandit serve`, which picks up scope edits within one sweep interval.
 */
export async function withLocalCoordinator<T>(dataDir: string | undefined, fn: (app: FastifyInstance) => Promise<T>): Promise<T> {
  const config = resolveConfig({ flags: { ...(dataDir !== undefined ? { dataDir } : {}), logLevel: 'silent' }, env: process.env });
  const app = await buildApp({ config, sweepTimer: false, logger: false });
  try {
    await app.ready();
    return await fn(app);
  } finally {
    await app.close();
  }
}
