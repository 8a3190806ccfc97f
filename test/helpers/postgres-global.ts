import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { TestProject } from 'vitest/node';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Where the unit run's workers keep their throwaway PostgreSQL clusters (test/helpers/postgres.ts). */
    postgresClustersDir: string;
  }
}

const SCRIPT = resolve(import.meta.dirname, '../../scripts/pg-throwaway.sh');

/**
 * vitest globalSetup of the unit project: a directory for one throwaway PostgreSQL cluster per
 * worker (started by the first file that needs one, `usePostgres`), instead of one per test file.
 * Not one for the whole run: a store reads its learning queue up to the oldest transaction still
 * open in the cluster, so files running at once in one cluster would hold each other back. After
 * the run every cluster in the directory is stopped and removed.
 */
export default function setup(project: TestProject): () => void {
  const dir = mkdtempSync(join(tmpdir(), 'pb-pg-run-'));
  // The postgres user (the clusters' owner when tests run as root) must be able to reach them.
  chmodSync(dir, 0o711);
  project.provide('postgresClustersDir', dir);
  // A run that is killed (SIGTERM, Ctrl-C twice) never reaches the teardown below: a watchdog
  // outside the run stops its clusters once this process is gone (it was seen to leave two).
  spawn(
    'bash',
    [
      '-c',
      'while kill -0 "$1" 2>/dev/null; do sleep 2; done; [ -d "$2" ] || exit 0; for c in "$2"/*; do bash "$3" stop "$c"; done; rm -rf "$2"',
      'pb-pg-watchdog',
      String(process.pid),
      dir,
      SCRIPT,
    ],
    { detached: true, stdio: 'ignore' },
  ).unref();
  return () => {
    for (const cluster of readdirSync(dir)) spawnSync('bash', [SCRIPT, 'stop', join(dir, cluster)], { stdio: 'ignore' });
    rmSync(dir, { recursive: true, force: true });
  };
}
