import { Command, InvalidArgumentError } from 'commander';
import { cliIo } from '../io.js';
import { resolveSeed } from '../../core/index.js';
import {
  DEFAULT_PROFILE,
  describeProfile,
  isProfileName,
  MAX_SYNTHETIC_EPOCHS,
  MAX_SYNTHETIC_HOSTS,
  profileNames,
  profiles,
  renderProfilesMarkdown,
  renderProfilesText,
  writeGeneratedScope,
  type GenerateProgress,
  type ProfileName,
} from '../../../simulator/synthetic/index.js';
import { parseInteger } from '../options.js';
import { scopeAdminSubcommands } from './scope-admin.js';

/** Lines above which progress goes to stderr even when it is not a terminal. */
const LONG_RUN = 200_000;

interface GenerateFlags {
  profile: ProfileName;
  hosts: number;
  epochs: number;
  seed?: string;
  out: string;
}

function parseProfile(value: string): ProfileName {
  if (!isProfileName(value)) throw new InvalidArgumentError(`unknown profile "${value}"; expected one of ${profileNames.join(', ')}.`);
  return value;
}

function parseHosts(value: string): number {
  const n = parseInteger(1)(value);
  if (n > MAX_SYNTHETIC_HOSTS) {
    throw new InvalidArgumentError(
      `at most ${MAX_SYNTHETIC_HOSTS} hosts fit in 198.18.0.0/15 (synthetic scopes never leave it), got ${n}.`,
    );
  }
  return n;
}

function createProgress(totalLines: number): ((p: GenerateProgress) => void) | undefined {
  const tty = cliIo().stderr.isTTY === true;
  if (!tty && totalLines < LONG_RUN) return undefined;
  const started = performance.now();
  let lastPrinted = -1;
  return ({ epoch, epochs, hostsDone, hosts, lines, totalLines: total }) => {
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    const line = `scope generate: epoch ${epoch + 1}/${epochs}, ${hostsDone}/${hosts} hosts, ${lines}/${total} lines, ${seconds} s`;
    const finished = lines === total;
    if (tty) cliIo().stderr.write(`\r${line}${finished ? '\n' : ''}`);
    else if ((hostsDone === hosts || finished) && epoch !== lastPrinted) {
      // Not a terminal (a log file): one line per epoch, not a carriage-return animation.
      lastPrinted = epoch;
      cliIo().stderr.write(`${line}\n`);
    }
  };
}

async function runGenerate(flags: GenerateFlags): Promise<void> {
  const seed = resolveSeed(flags.seed);
  if (flags.seed === undefined) cliIo().stderr.write(`scope generate: no --seed given, using ${seed}\n`);
  const written = await writeGeneratedScope(
    { profile: flags.profile, hosts: flags.hosts, epochs: flags.epochs, seed },
    flags.out,
    createProgress(flags.hosts * flags.epochs),
  );
  cliIo().stderr.write(
    `scope generate: wrote ${written.lines} lines (${written.hosts} hosts x ${written.epochs} epochs, profile ${flags.profile}, seed ${seed}) to ${written.path}\n`,
  );
}

/** `scope generate`: write a synthetic exhaustive recording. */
export function createScopeGenerateCommand(): Command {
  return new Command('generate')
    .description('Write a synthetic scope recording (every port probed) calibrated to a profile; same seed, same bytes.')
    .option('--profile <name>', `the scope profile: ${profileNames.join(', ')}`, parseProfile, DEFAULT_PROFILE)
    .requiredOption('--hosts <n>', `number of hosts, laid out from 198.18.0.0 (at most ${MAX_SYNTHETIC_HOSTS})`, parseHosts)
    .requiredOption('--epochs <n>', 'number of epochs (scans of the whole scope)', parseInteger(1, MAX_SYNTHETIC_EPOCHS))
    .option('--seed <seed>', 'the generator seed; default: the current time, printed on stderr')
    .requiredOption('--out <file>', 'where to write the NDJSON recording')
    .action(async (flags: GenerateFlags) => runGenerate(flags));
}

/** `scope profiles`: list the profiles and their parameters. */
export function createScopeProfilesCommand(): Command {
  return new Command('profiles')
    .description('List the synthetic scope profiles and their parameters (docs/profiles.md).')
    .option('--json', 'print one JSON object: profile name -> {description, spec, parameters}')
    .option('--markdown', 'print the Markdown tables of docs/profiles.md')
    .action((flags: { json?: boolean; markdown?: boolean }) => {
      if (flags.json) {
        const out = Object.fromEntries(
          profileNames.map((name) => [
            name,
            { description: profiles[name].description, spec: profiles[name], parameters: describeProfile(name) },
          ]),
        );
        cliIo().stdout.write(JSON.stringify(out) + '\n');
      } else cliIo().stdout.write(flags.markdown ? renderProfilesMarkdown() : renderProfilesText());
    });
}

/**
 * Subcommands of the `scope` group, in --help order. Others add theirs (add, remove, import,
 * export, list, rescan) here: one factory per subcommand.
 */
export const scopeSubcommands: Array<() => Command> = [createScopeGenerateCommand, createScopeProfilesCommand, ...scopeAdminSubcommands];

/** The `scope` command group with every subcommand of `scopeSubcommands`. */
export function createScopeCommand(): Command {
  const scope = new Command('scope').description(
    'Scopes: generate synthetic scopes and list their profiles; manage the coordinator scopes (add, remove, import, export, list) and queue rescans.',
  );
  for (const create of scopeSubcommands) {
    // addCommand() does not inherit settings: make nested errors reach main() like top-level ones.
    scope.addCommand(create().exitOverride().showHelpAfterError('(run with --help for usage)'));
  }
  return scope;
}

/** Registers `scope` on the program. */
export function registerScope(program: Command): void {
  program.addCommand(createScopeCommand());
}
