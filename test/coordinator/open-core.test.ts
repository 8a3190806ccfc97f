import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { resolveConfig } from '../../src/coordinator/config.js';
import { databasePath, openCoordinatorCore } from '../../src/coordinator/open-core.js';
import { withLocalCoordinator } from '../../src/coordinator/local.js';
import { silentLogger } from '../../src/core/logger.js';

/** The coordinator's core opens, changes and closes a real SQLite data directory with no web server. */
describe('openCoordinatorCore', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });
  const dataDir = () => {
    const dir = mkdtempSync(join(tmpdir(), 'pb-core-'));
    dirs.push(dir);
    return dir;
  };

  it('keeps a scope edit across a close and a reopen of the data directory', async () => {
    const dir = dataDir();
    const config = resolveConfig({ flags: { dataDir: dir, logLevel: 'silent' }, env: {} });
    const core = await openCoordinatorCore({ config, log: silentLogger });
    expect(core.ownsStore).toBe(true);
    expect(await core.coordinator.addScope('scope', [{ range: '198.18.7.0/30', tags: ['lab'] }])).toBeGreaterThan(0);
    await core.close();
    expect(existsSync(databasePath(dir))).toBe(true);

    const again = await openCoordinatorCore({ config, log: silentLogger });
    try {
      expect(again.coordinator.lookup('198.18.7.2')).toEqual({ ip: '198.18.7.2', tags: ['lab'] });
      expect(again.coordinator.lookup('198.18.7.9')).toBeUndefined();
    } finally {
      await again.close();
    }
  });

  it('is what withLocalCoordinator hands the CLI, and it closes the store afterwards', async () => {
    const dir = dataDir();
    const tags = await withLocalCoordinator(dir, async (local) => {
      await local.coordinator.addScope('scope', [{ range: '198.18.7.8/31', tags: ['office'] }]);
      return local.coordinator.lookup('198.18.7.9')?.tags;
    });
    expect(tags).toEqual(['office']);
    // Closed: the same directory opens again (no lingering handle) and sees the edit.
    const seen = await withLocalCoordinator(dir, async (local) => local.coordinator.lookup('198.18.7.8')?.tags);
    expect(seen).toEqual(['office']);
  });
});
