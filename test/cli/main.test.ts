import { describe, expect, test } from 'vitest';
import { buildProgram } from '../../src/cli/main.js';
import { commands } from '../../src/cli/commands/index.js';
import { VERSION } from '../../src/core/index.js';
import { runCli } from '../helpers/cli.js';

describe('the program loads only what the invocation needs', () => {
  test('--version prints the version and loads no command', async () => {
    expect(await runCli(['--version'])).toEqual({ code: 0, out: `${VERSION}\n`, err: '' });
    expect((await buildProgram(['--version'])).commands).toEqual([]);
  });

  test('a named command loads itself; no name, or --help, loads every command for the listing', async () => {
    expect((await buildProgram(['scope', 'list'])).commands.map((c) => c.name())).toEqual(['scope']);
    // A command's own --version flag (if any) is its business: the command is loaded.
    expect((await buildProgram(['scope', '--version'])).commands.map((c) => c.name())).toEqual(['scope']);
    for (const args of [[], ['--help']]) expect((await buildProgram(args)).commands).toHaveLength(commands.length);
  });
});
