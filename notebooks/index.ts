import { PortbanditError } from '../src/core/index.js';
import { headlineNotebook } from './headline.js';
import type { Notebook } from './types.js';

export type { Notebook, NotebookInput } from './types.js';
export { loadNotebookInput } from './load.js';
export { headlineNotebook } from './headline.js';

/** Every shipped notebook, by name. Add one: a file in notebooks/, one line here. */
export const notebooks = {
  headline: headlineNotebook,
} as const satisfies Record<string, Notebook>;

export const notebookNames = Object.keys(notebooks);

/** The notebook registered under `name`; throws listing the known names. */
export function getNotebook(name: string): Notebook {
  if (!Object.hasOwn(notebooks, name)) {
    throw new PortbanditError('PB_ERR_UNKNOWN_NOTEBOOK', `unknown notebook "${name}" (known: ${notebookNames.join(', ')})`, {
      where: 'NAME',
    });
  }
  return notebooks[name as keyof typeof notebooks];
}
