import { type Command, InvalidArgumentError } from 'commander';
import { cliIo } from '../io.js';
import { type ImportOptions, importMasscan, importNmap } from '../../importers/index.js';
import { collect, parseInteger } from '../options.js';

interface ImportFlags {
  out: string;
  epochBy: 'file' | 'time';
  epochSeconds: number;
  tag: string[];
  name?: string;
  probed?: string;
}

function parseEpochBy(value: string): 'file' | 'time' {
  if (value === 'file' || value === 'time') return value;
  throw new InvalidArgumentError(`expected file or time, got "${value}".`);
}

function options(files: string[], flags: ImportFlags): ImportOptions {
  return {
    files,
    out: flags.out,
    epochBy: flags.epochBy,
    epochSeconds: flags.epochSeconds,
    tags: flags.tag,
    ...(flags.name !== undefined ? { name: flags.name } : {}),
    ...(flags.probed !== undefined ? { probed: flags.probed } : {}),
  };
}

function addCommon(cmd: Command): Command {
  return cmd
    .requiredOption('--out <file>', 'scope recording to write (NDJSON)')
    .option('--epoch-by <how>', 'file: one epoch per file, in the order given; time: bucket by scan time', parseEpochBy, 'file')
    .option('--epoch-seconds <s>', 'with --epoch-by time: epoch width in seconds', parseInteger(1, 10 * 365 * 86_400), 86_400)
    .option('--tag <tag>', 'tag every host with this (repeatable)', collect, [])
    .option('--name <name>', 'recording name');
}

/** `portbandit import nmap|masscan FILES... --out REC`: scanner output -> scope recordings. */
export function registerImport(program: Command): void {
  const group = program.command('import').description('Turn nmap XML or masscan output into a scope recording for the simulator.');
  addCommon(
    group
      .command('nmap')
      .argument('<files...>', 'nmap -oX files')
      .description("nmap XML -> recording; probed ports from each file's <scaninfo services>."),
  )
    .option('--probed <spec>', 'override the probed ports (e.g. 1-65535)')
    .action(async (files: string[], flags: ImportFlags) => {
      const summary = await importNmap(options(files, flags));
      cliIo().stderr.write(
        `import: wrote ${summary.observations} observations (${summary.epochs} epochs, ${summary.hosts} hosts) to ${flags.out}\n`,
      );
      cliIo().stdout.write(`${JSON.stringify(summary)}\n`);
    });
  addCommon(
    group
      .command('masscan')
      .argument('<files...>', 'masscan -oJ, -oD or -oL files')
      .description('masscan output -> recording; probed ports from --probed or a "# probed: SPEC" line.'),
  )
    .option('--probed <spec>', 'the ports the scan probed (masscan -p); required unless the file says')
    .action(async (files: string[], flags: ImportFlags) => {
      const summary = await importMasscan(options(files, flags));
      cliIo().stderr.write(
        `import: wrote ${summary.observations} observations (${summary.epochs} epochs, ${summary.hosts} hosts) to ${flags.out}\n`,
      );
      cliIo().stdout.write(`${JSON.stringify(summary)}\n`);
    });
}
