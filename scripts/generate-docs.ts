// Regenerate the docs written from code: docs/errors.md (the error-code table) and the settings
// table of docs/coordinator.md (the config schema). Run with `npm run docs`; tests fail when a
// table is stale (test/core/errors-doc.test.ts, test/coordinator/config-doc.test.ts).
import { readFileSync, writeFileSync } from 'node:fs';
import { renderErrorsMarkdown } from '../src/core/errors-doc.js';
import { withConfigTable } from '../src/coordinator/config.js';

const coordinatorDoc = new URL('../docs/coordinator.md', import.meta.url);
writeFileSync(new URL('../docs/errors.md', import.meta.url), renderErrorsMarkdown());
writeFileSync(coordinatorDoc, withConfigTable(readFileSync(coordinatorDoc, 'utf8')));
process.stderr.write('wrote docs/errors.md and the settings table of docs/coordinator.md\n');
