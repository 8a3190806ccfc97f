import { type LocalCoordinator, withLocalCoordinator } from '../coordinator/index.js';
import { cliIo } from './io.js';

/**
 * `withLocalCoordinator` for a CLI command on a data directory (`--data`, `PORTBANDIT_DATA`,
 * `PORTBANDIT_POSTGRES_URL`), saying on stderr when the directory held no store and the command
 * made one: a token or a scope entry written there reaches no running coordinator unless it was
 * started on that directory (a mistyped `--data`, or a coordinator on PostgreSQL administered
 * without `PORTBANDIT_POSTGRES_URL`).
 */
export function withDataStore<T>(
  dataDir: string | undefined,
  fn: (local: LocalCoordinator) => Promise<T>,
  options: { readonly existing?: { readonly where: string } } = {},
): Promise<T> {
  return withLocalCoordinator(dataDir, fn, {
    ...options,
    onNewStore: (dir, file) =>
      cliIo().stderr.write(
        `portbandit: ${dir} held no store; created a new SQLite store (${file}). A coordinator reads it only when ` +
          `started with --data ${dir}; for coordinators on PostgreSQL set PORTBANDIT_POSTGRES_URL instead.\n`,
      ),
  });
}
