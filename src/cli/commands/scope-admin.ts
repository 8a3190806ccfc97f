import { createWriteStream, readFileSync } from 'node:fs';
import { cliIo } from '../io.js';
import { once } from 'node:events';
import { Command } from 'commander';
import { PortbanditError } from '../../core/index.js';
import { formatScopeFile, normalizeScopeLine, parseScopeFile, streamRecording } from '../../coordinator/index.js';
import { collect, parseTime } from '../options.js';
import { counted } from '../output.js';
import { withDataStore } from '../data-store.js';

const dataOption = ['--data <dir>', 'data directory (env PORTBANDIT_DATA; default ./data)'] as const;
const blockOption = ['--blocklist', 'work on the blocklist instead of the scope'] as const;

/** `n entries`, `1 entry`. */
const entries = (n: number): string => counted(n, 'entry', 'entries');

/** The scope's size line: `n addresses in scope minus blocklist`. */
const inScope = (size: bigint): string => `${counted(size, 'address', 'addresses')} in scope minus blocklist`;

function listOf(flags: { blocklist?: boolean }): 'scope' | 'blocklist' {
  return flags.blocklist ? 'blocklist' : 'scope';
}

function createAdd(): Command {
  return new Command('add')
    .description(
      'Add addresses, CIDRs, first-last ranges (IPv4/IPv6) or DNS names (scope only, resolved each cycle) to the coordinator scope (or --blocklist), with tags.',
    )
    .argument('<ranges...>', 'e.g. 198.18.0.0/24 198.18.1.10-198.18.1.20 files.lab.example')
    .option('--tag <tag>', 'tag for these ranges (repeatable)', collect, [])
    .option(...blockOption)
    .option(...dataOption)
    .action(async (ranges: string[], flags: { tag: string[]; blocklist?: boolean; data?: string }) => {
      const lines = ranges.map((r, i) => normalizeScopeLine(r, flags.tag, `ranges[${i}]`));
      await withDataStore(flags.data, async (app) => {
        const version = await app.coordinator.addScope(listOf(flags), lines);
        cliIo().stderr.write(
          `${listOf(flags)}: ${entries(lines.length)} added (version ${version}); ${inScope(app.coordinator.addressSpace.size)}\n`,
        );
      });
    });
}

function createRemove(): Command {
  return new Command('remove')
    .description('Remove entries from the coordinator scope (or --blocklist) by their range.')
    .argument('<ranges...>', 'ranges as listed by `scope list`')
    .option(...blockOption)
    .option(...dataOption)
    .action(async (ranges: string[], flags: { blocklist?: boolean; data?: string }) => {
      await withDataStore(flags.data, async (app) => {
        const out = await app.coordinator.removeScope(listOf(flags), ranges);
        cliIo().stderr.write(`${listOf(flags)}: ${out.removed} of ${entries(ranges.length)} removed (version ${out.version})\n`);
      });
    });
}

function createImport(): Command {
  return new Command('import')
    .description('Import a Natlas scope file (`ip_or_cidr,tag1,tag2` per line) into the coordinator scope (or --blocklist).')
    .argument('<file>', 'scope file, - for stdin')
    .option('--replace', 'replace the whole list atomically instead of adding')
    .option(...blockOption)
    .option(...dataOption)
    .action(async (file: string, flags: { replace?: boolean; blocklist?: boolean; data?: string }) => {
      let text: string;
      try {
        text = readFileSync(file === '-' ? 0 : file, 'utf8');
      } catch (cause) {
        throw new PortbanditError('PB_ERR_IO', `cannot read the scope file: ${(cause as Error).message}`, { where: file, cause });
      }
      const lines = parseScopeFile(text, file);
      await withDataStore(flags.data, async (app) => {
        const version = flags.replace
          ? await app.coordinator.replaceScope(listOf(flags), lines)
          : await app.coordinator.addScope(listOf(flags), lines);
        cliIo().stderr.write(
          `${listOf(flags)}: ${entries(lines.length)} imported (version ${version}); ${inScope(app.coordinator.addressSpace.size)}\n`,
        );
      });
    });
}

function createExport(): Command {
  return new Command('export')
    .description("Print the coordinator scope (or --blocklist) in Natlas's `ip_or_cidr,tag1,tag2` format.")
    .option(...blockOption)
    .option(...dataOption)
    .action(async (flags: { blocklist?: boolean; data?: string }) => {
      await withDataStore(flags.data, async (app) => {
        cliIo().stdout.write(formatScopeFile((await app.coordinator.store.listScope(listOf(flags))).entries));
      });
    });
}

function createList(): Command {
  return new Command('list')
    .description('List the coordinator scope (or --blocklist) with tags, and the cycle progress.')
    .option(...blockOption)
    .option(...dataOption)
    .option('--json', 'JSON output')
    .action(async (flags: { blocklist?: boolean; data?: string; json?: boolean }) => {
      await withDataStore(flags.data, async (app) => {
        const listing = await app.coordinator.store.listScope(listOf(flags));
        const progress = app.coordinator.progress();
        if (flags.json) {
          cliIo().stdout.write(
            JSON.stringify({
              list: listOf(flags),
              ...listing,
              addresses: String(app.coordinator.addressSpace.size),
              cycle: { ...progress, visitsFinished: await app.coordinator.cycleVisitsFinished() },
            }) + '\n',
          );
          return;
        }
        for (const e of listing.entries) cliIo().stdout.write(`${e.range}\t${e.tags.join(',')}\n`);
        cliIo().stderr.write(
          `${entries(listing.entries.length)} (version ${listing.version}); ${inScope(app.coordinator.addressSpace.size)}; cycle ${progress.cycle} at ${(progress.fraction * 100).toFixed(1)}% handed out, ${await app.coordinator.cycleVisitsFinished()} of ${progress.size} visits finished\n`,
        );
      });
    });
}

function createExportHistory(): Command {
  return new Command('export-history')
    .description("Write the coordinator's scan history as a scope recording (the simulator's replay format): one line per host per cycle.")
    .requiredOption('--out <file>', 'recording to write (NDJSON)')
    .option('--since <time>', 'only scans finished at or after (ISO date or ms)')
    .option('--until <time>', 'only scans finished before (ISO date or ms)')
    .option('--name <name>', 'recording name', 'coordinator-history')
    .option(...dataOption)
    .action(async (flags: { out: string; since?: string; until?: string; name: string; data?: string }) => {
      await withDataStore(flags.data, async (app) => {
        const stream = createWriteStream(flags.out, { encoding: 'utf8' });
        const lines = await streamRecording(
          app.coordinator.store,
          {
            name: flags.name,
            ...(flags.since !== undefined ? { since: parseTime(flags.since) } : {}),
            ...(flags.until !== undefined ? { until: parseTime(flags.until) } : {}),
          },
          async (line) => {
            if (!stream.write(line + '\n')) await once(stream, 'drain');
            return true;
          },
        );
        stream.end();
        await once(stream, 'finish');
        cliIo().stderr.write(`wrote ${lines} observations to ${flags.out}\n`);
      });
    });
}

/** The coordinator's scope subcommands, attached to the `scope` group (scope.ts). */
function createRescan(): Command {
  return new Command('rescan')
    .description(
      'Queue manual rescans of scope addresses, served before the cycle (as the host page\'s "Rescan now"); an address being scanned now is not queued: the scan under way is its rescan.',
    )
    .argument('<ips...>', 'addresses in the scope, e.g. 198.18.1.10')
    .option('--json', 'JSON output: {queued, scanning}')
    .option(...dataOption)
    .action(async (ips: string[], flags: { json?: boolean; data?: string }) => {
      await withDataStore(flags.data, async (app) => {
        const { queued, scanning } = await app.coordinator.requestRescan(ips);
        if (flags.json) {
          cliIo().stdout.write(`${JSON.stringify({ queued: queued.map((q) => q.ip), scanning })}\n`);
          return;
        }
        cliIo().stderr.write(
          `rescan: ${counted(queued.length, 'address', 'addresses')} queued` +
            (scanning.length > 0 ? `; being scanned now, not queued: ${scanning.join(', ')}` : '') +
            '\n',
        );
      });
    });
}

export const scopeAdminSubcommands: Array<() => Command> = [
  createAdd,
  createRemove,
  createImport,
  createExport,
  createList,
  createExportHistory,
  createRescan,
];
