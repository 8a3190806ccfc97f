import { Command } from 'commander';
import { cliIo } from '../io.js';
import { openOutput } from '../output.js';
import { parseTime } from '../options.js';
import { type SourceFlags, withResultSource } from '../result-source.js';

interface CommonFlags extends SourceFlags {
  out?: string;
}

/** --data / --server / --token-file / --out, shared by every `export` subcommand. */
function withSourceOptions(cmd: Command): Command {
  return cmd
    .option('--out <file>', 'write here instead of stdout')
    .option('--data <dir>', 'data directory (env PORTBANDIT_DATA; default ./data)')
    .option('--server <url>', "a running coordinator's URL instead of a data directory (env PORTBANDIT_SERVER)")
    .option('--token-file <file>', 'with --server: the admin token file (default $PORTBANDIT_ADMIN_TOKEN)');
}

/** Write every line `produce` yields to --out or stdout; returns how many. */
async function exportLines(flags: CommonFlags, produce: (write: (line: string) => Promise<void>) => Promise<void>): Promise<number> {
  const out = openOutput(flags.out);
  let lines = 0;
  try {
    await produce(async (line) => {
      lines++;
      await out.write(line + '\n');
    });
  } finally {
    await out.close();
  }
  return lines;
}

function createRecording(): Command {
  return withSourceOptions(
    new Command('recording')
      .description("The store's history as a scope recording (the simulator's replay format): one line per host per cycle.")
      .option('--since <time>', 'only scans finished at or after (ISO date or ms)')
      .option('--until <time>', 'only scans finished before (ISO date or ms)')
      .option('--name <name>', 'recording name', 'coordinator-history'),
  ).action(async (flags: CommonFlags & { since?: string; until?: string; name: string }) => {
    const options = {
      name: flags.name,
      ...(flags.since !== undefined ? { since: parseTime(flags.since) } : {}),
      ...(flags.until !== undefined ? { until: parseTime(flags.until) } : {}),
    };
    const lines = await withResultSource(flags, (source) => exportLines(flags, (write) => source.recording(options, write)));
    cliIo().stderr.write(`export recording: ${Math.max(0, lines - 1)} observations${flags.out !== undefined ? ` to ${flags.out}` : ''}\n`);
  });
}

function createNmap(): Command {
  return withSourceOptions(
    new Command('nmap')
      .description("A host's visit (default its latest) as an nmap -oX report; `portbandit import nmap` reads it back.")
      .requiredOption('--host <ip>', 'the address')
      .option('--scan <id>', 'the visit (scan id, from `portbandit host IP --history`)'),
  ).action(async (flags: CommonFlags & { host: string; scan?: string }) => {
    const xml = await withResultSource(flags, (source) => source.nmapXml(flags.host, flags.scan));
    const out = openOutput(flags.out);
    try {
      await out.write(xml);
    } finally {
      await out.close();
    }
  });
}

function createJson(): Command {
  return withSourceOptions(
    new Command('json')
      .description(
        'Visits as NDJSON (one scan document per line), every visit in history or --latest per host, optionally filtered by a search query.',
      )
      .argument('[query]', 'search query (empty = everything)', '')
      .option('--latest', "only each host's latest visit"),
  ).action(async (query: string, flags: CommonFlags & { latest?: boolean }) => {
    const lines = await withResultSource(flags, (source) =>
      exportLines(flags, (write) => source.visits({ query, latest: flags.latest === true }, write)),
    );
    cliIo().stderr.write(`export json: ${lines} visits${flags.out !== undefined ? ` to ${flags.out}` : ''}\n`);
  });
}

/** Registers `portbandit export recording|nmap|json`. */
export function registerExport(program: Command): void {
  const group = new Command('export').description(
    'Export results from a data directory or a running coordinator: recording (replay format), nmap (XML of a visit), json (NDJSON of visits).',
  );
  for (const create of [createRecording, createNmap, createJson]) {
    // addCommand() does not inherit settings: make nested errors reach main() like top-level ones.
    group.addCommand(create().exitOverride().showHelpAfterError('(run with --help for usage)'));
  }
  program.addCommand(group);
}
