#!/usr/bin/env node
import { Command, CommanderError } from 'commander';
import { isPortbanditError, VERSION } from '../core/index.js';
import { commands } from './commands/index.js';
import { type CliIo, processIo, runWithIo } from './io.js';

/** The first argument that is not an option: the subcommand's name, if any. */
function commandName(args: readonly string[]): string | undefined {
  return args.find((a) => !a.startsWith('-'));
}

/**
 * Build the `portbandit` program. Only the command named in `args` is loaded; `--version` alone
 * loads none (every command's modules cost ~0.9 s of CPU); with no name (or --help, or an unknown
 * name) every command is loaded so that help lists them all.
 */
export async function buildProgram(args: readonly string[] = [], io: CliIo = processIo()): Promise<Command> {
  const program = new Command('portbandit')
    .description('Continuous network-exposure scanning that learns which ports to scan.')
    .version(VERSION)
    .showHelpAfterError('(run with --help for usage)')
    .configureOutput({ writeOut: (s) => io.stdout.write(s), writeErr: (s) => io.stderr.write(s) });
  program.exitOverride();
  const name = commandName(args);
  const entry = commands.find((c) => c.name === name);
  const versionOnly = name === undefined && args.some((a) => a === '-V' || a === '--version');
  const selected = entry ? [entry] : versionOnly ? [] : commands;
  for (const register of await Promise.all(selected.map((c) => c.load()))) register(program);
  program.commands.forEach(function configure(c: Command): void {
    c.exitOverride();
    c.configureOutput({ writeOut: (s) => io.stdout.write(s), writeErr: (s) => io.stderr.write(s) });
    c.commands.forEach(configure);
  });
  return program;
}

/**
 * Run the CLI with these streams and environment (the process's own by default); resolves to
 * the exit code. Everything the run prints goes to `io`, so tests call it in-process.
 */
export async function main(argv: readonly string[] = process.argv, io: CliIo = processIo()): Promise<number> {
  return runWithIo(io, () => run(argv, io));
}

async function run(argv: readonly string[], io: CliIo): Promise<number> {
  const program = await buildProgram(argv.slice(2), io);
  try {
    await program.parseAsync([...argv]);
    return 0;
  } catch (error) {
    if (error instanceof CommanderError) {
      // Commander already printed the message (help, version, or the bad flag).
      return error.exitCode;
    }
    if (isPortbanditError(error)) {
      io.stderr.write(`portbandit: ${error.message} [${error.code}]\n`);
      return 2;
    }
    io.stderr.write(`portbandit: unexpected error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    return 1;
  }
}

const invokedDirectly =
  process.argv[1] !== undefined && import.meta.url === new URL(`file://${(await import('node:fs')).realpathSync(process.argv[1])}`).href;
if (invokedDirectly) {
  process.exitCode = await main();
}
