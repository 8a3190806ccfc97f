import { silentLogger } from '../core/index.js';
import { resolveConfig } from './config.js';
import { type CoordinatorCore, openCoordinatorCore } from './open-core.js';

/** What the CLI's commands on a data directory work on: the coordinator's core, no web server. */
export type LocalCoordinator = Pick<CoordinatorCore, 'coordinator' | 'retention' | 'store'>;

/**
 * Open the coordinator of a data directory in this process, with no web server: what the CLI's
 * `scope`, `token`, `policy`, `search` and `host` commands work on. SQLite (WAL) lets them run
 * next to a live `portbandit serve`, which picks up scope edits within one sweep interval. No
 * names are resolved (a CLI command never sends a DNS query) and no timers run.
 */
export async function withLocalCoordinator<T>(dataDir: string | undefined, fn: (local: LocalCoordinator) => Promise<T>): Promise<T> {
  const config = resolveConfig({ flags: { ...(dataDir !== undefined ? { dataDir } : {}), logLevel: 'silent' }, env: process.env });
  const core = await openCoordinatorCore({ config, log: silentLogger });
  try {
    return await fn(core);
  } finally {
    await core.close();
  }
}
