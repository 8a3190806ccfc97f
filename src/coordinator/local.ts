import { existsSync } from 'node:fs';
import { PortbanditError, silentLogger } from '../core/index.js';
import { resolveConfig } from './config.js';
import { type CoordinatorCore, databasePath, openCoordinatorCore } from './open-core.js';

/** What the CLI's commands on a data directory work on: the coordinator's core, no web server. */
export type LocalCoordinator = Pick<CoordinatorCore, 'coordinator' | 'retention' | 'store'>;

/**
 * Open the coordinator of a data directory in this process, with no web server: what the CLI's
 * `scope`, `token`, `policy`, `search` and `host` commands work on. SQLite (WAL) lets them run
 * next to a live `portbandit serve`, which picks up scope edits within one sweep interval. No
 * names are resolved (a CLI command never sends a DNS query) and no timers run.
 *
 * `onNewStore` hears of a SQLite store this call created (the directory held none): on a mistyped
 * `--data`, or with a coordinator on PostgreSQL and `PORTBANDIT_POSTGRES_URL` unset, that store is
 * one no coordinator reads, and the CLI says so.
 */
export async function withLocalCoordinator<T>(
  dataDir: string | undefined,
  fn: (local: LocalCoordinator) => Promise<T>,
  options: {
    readonly onNewStore?: (dataDir: string, file: string) => void;
    /** Refuse a directory that holds no store (`PB_ERR_FLAG_VALUE`, naming `where`) instead of making one: for commands that only read it. */
    readonly existing?: { readonly where: string };
  } = {},
): Promise<T> {
  const config = resolveConfig({ flags: { ...(dataDir !== undefined ? { dataDir } : {}), logLevel: 'silent' }, env: process.env });
  const file = databasePath(config.dataDir);
  const fresh = config.postgresUrl === '' && !existsSync(file);
  if (fresh && options.existing) {
    throw new PortbanditError('PB_ERR_FLAG_VALUE', `${config.dataDir} holds no store (${file}); nothing to read`, {
      where: options.existing.where,
    });
  }
  const core = await openCoordinatorCore({ config, log: silentLogger });
  if (fresh) options.onNewStore?.(config.dataDir, file);
  try {
    return await fn(core);
  } finally {
    await core.close();
  }
}
