#!/usr/bin/env node
import { Command, CommanderError } from 'commander';
import { isPortbanditError } from '../core/errors.js';
import { commands } from './commands/index.js';
import { VERSION } from '../core/version.js';

/** The first argument that is not an option: the subcommand's name, if any. */
function commandName(args: readonly string[]): string | undefined {
  return args.find((a) => !a.startsWith('-'));
}

/**
 * Build the `portbandit` program. Only the command named in `args` is loaded; with none (or
 * --help, or an unknown name) every command is loaded so that help lists them all.
 */
export async function buildProgram(args: readonly string[] = []): Promise<Command> {
  const program = new Command('portbandit')
    .description('Continuous network-exposure scanning that learns which ports to scan.')
    .version(VERSION)
    .showHelpAfterError('(run with --help for usage)')
    .configureOutput({ writeErr: (s) => process.stderr.write(s) });
  program.exitOverride();
  const name = commandName(args);
  const entry = commands.find((c) => c.name === name);
  const selected = entry ? [entry] : commands;
  for (const register of await Promise.all(selected.map((c) => c.load()))) register(program);
  program.commands.forEach((c) => c.exitOverride());
  return program;
}

/** Run the CLI; resolves to the process exit code. */
export async function main(argv: readonly string[] = process.argv): Promise<number> {
  const program = await buildProgram(argv.slice(2));
  try {
    await program.parseAsync([...argv]);
    return 0;
  } catch (error) {
    if (error instanceof CommanderError) {
      // Commander already printed the message (help, version, or the bad flag).
      return error.exitCode;
    }
    if (isPortbanditError(error)) {
      process.stderr.write(`portbandit: ${error.message} [${error.code}]\n`);
      return 2;
    }
    process.stderr.write(`portbandit: unexpected error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    return 1;
  }
}

const invokedDirectly = process.argv[1] !== undefined && import.meta.url === new URL(`file://${(await import('node:fs')).realpathSync(process.argv[1])}`).href;
if (invokedDirectly) {
  process.exitCode = await main();
}
