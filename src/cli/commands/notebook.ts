import { mkdirSync, writeFileSync } from 'node:fs';
import { cliIo } from '../io.js';
import { dirname, join } from 'node:path';
import { Command } from 'commander';
import { PortbanditError } from '../../core/index.js';
import { getNotebook, loadNotebookInput, notebookNames } from '../../../notebooks/index.js';

interface NotebookFlags {
  results: string;
  out?: string;
}

/** `portbandit notebook NAME --results DIR [--out FILE]`: render an analysis notebook to HTML. */
export function createNotebookCommand(): Command {
  return new Command('notebook')
    .description(
      `Render an analysis notebook (${notebookNames.join(', ')}) from an experiment's output folder to one self-contained HTML page.`,
    )
    .argument('<name>', `notebook name (${notebookNames.join(', ')})`)
    .requiredOption('--results <dir>', 'output folder of `portbandit experiment`')
    .option('--out <file>', 'HTML file to write (default: DIR/NAME.html)')
    .action((name: string, flags: NotebookFlags) => {
      const notebook = getNotebook(name);
      const input = loadNotebookInput(flags.results);
      const html = notebook.render(input);
      const out = flags.out ?? join(flags.results, `${notebook.name}.html`);
      try {
        mkdirSync(dirname(out), { recursive: true });
        writeFileSync(out, html);
      } catch (error) {
        throw new PortbanditError('PB_ERR_IO', `cannot write the notebook: ${(error as Error).message}`, { where: out, cause: error });
      }
      cliIo().stdout.write(`${out}\n`);
    });
}

export function registerNotebook(program: Command): void {
  program.addCommand(createNotebookCommand());
}
