import type { Command } from 'commander';
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { basename, join } from 'node:path';
import { databasePath, resolveConfig, screenshotsPath } from '../../coordinator/index.js';
import { PortbanditError } from '../../core/index.js';
import { backupSqliteFile, openSqliteStore } from '../../store/index.js';
import { cliIo } from '../io.js';

interface BackupFlags {
  data?: string;
  out: string;
}

const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;

/** `out` as a place for a new backup: absent (made here) or an empty directory. */
function prepareOut(out: string): void {
  if (existsSync(out) && readdirSync(out).length > 0) {
    throw new PortbanditError('PB_ERR_FLAG_VALUE', `${out} is not empty; a backup goes into a new or empty directory`, { where: '--out' });
  }
  mkdirSync(out, { recursive: true });
}

/** Registers `portbandit backup`. */
export function registerBackup(program: Command): void {
  program
    .command('backup')
    .description(
      "Copy a data directory's SQLite stores (portbandit.db, and screenshots.db when there is one) into a new directory: a consistent " +
        'snapshot each, safe next to a running coordinator, checked by SQLite before it is kept. The copy is a data directory: ' +
        '`portbandit serve --data <out>` runs on it. For a store on PostgreSQL use pg_dump.',
    )
    .option('--data <dir>', 'data directory to copy (env PORTBANDIT_DATA; default ./data)')
    .requiredOption('--out <dir>', 'where the copy goes: a new or empty directory')
    .action(async (flags: BackupFlags) => {
      const io = cliIo();
      const config = resolveConfig({
        flags: { ...(flags.data !== undefined ? { dataDir: flags.data } : {}), logLevel: 'silent' },
        env: io.env,
      });
      const where = flags.data !== undefined ? '--data' : 'PORTBANDIT_DATA';
      if (config.postgresUrl !== '') {
        throw new PortbanditError(
          'PB_ERR_FLAG_VALUE',
          'the store is on PostgreSQL (PORTBANDIT_POSTGRES_URL is set): back it up with pg_dump; this command copies SQLite files',
          { where: 'PORTBANDIT_POSTGRES_URL' },
        );
      }
      const files = [databasePath(config.dataDir), screenshotsPath(config.dataDir)].filter((f) => existsSync(f));
      if (!files.includes(databasePath(config.dataDir))) {
        throw new PortbanditError(
          'PB_ERR_FLAG_VALUE',
          `${config.dataDir} holds no store (${databasePath(config.dataDir)}); nothing to copy`,
          {
            where,
          },
        );
      }
      prepareOut(flags.out);
      const copied: string[] = [];
      for (const file of files) {
        const name = basename(file);
        io.stderr.write(`backup: copying a snapshot of ${file} to ${join(flags.out, name)}\n`);
        const result = await backupSqliteFile(file, join(flags.out, name), {
          onProgress: (p) => io.stderr.write(`backup: ${name}: ${mib(p.bytes)} written (the source holds ${mib(p.sourceBytes)})\n`),
        });
        copied.push(`${name} ${mib(result.bytes)} in ${(result.ms / 1000).toFixed(1)} s`);
      }
      // The copy opens as a store: what it holds, read through the store itself.
      const store = await openSqliteStore({ path: databasePath(flags.out) });
      const counts = await store.counts().finally(() => store.close());
      io.stdout.write(
        `backed up ${config.dataDir} to ${flags.out}: ${copied.join(', ')}; checked by SQLite; ` +
          `${counts.scans} visits, ${counts.hosts} hosts, ${counts.events} events\n`,
      );
    });
}
