import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { expect, test } from 'vitest';
import { renderErrorsMarkdown } from '../../src/core/errors-doc.js';
import { PortbanditError, errorCodes, isPortbanditError } from '../../src/core/errors.js';

test('docs/errors.md lists every error code (regenerate with renderErrorsMarkdown)', () => {
  expect(readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8')).toBe(renderErrorsMarkdown());
});

test('a PortbanditError carries its code, HTTP status, position and cause', () => {
  const cause = new Error('inner');
  const error = new PortbanditError('PB_ERR_RECORDING', 'expected an integer epoch', { where: 'scope.ndjson:3', cause });
  expect(error.message).toBe('scope.ndjson:3: expected an integer epoch');
  expect(error.statusCode).toBe(errorCodes.PB_ERR_RECORDING.status);
  expect(error.cause).toBe(cause);
  expect(isPortbanditError(error, 'PB_ERR_RECORDING')).toBe(true);
  expect(isPortbanditError(error, 'PB_ERR_IO')).toBe(false);
});

test('every error code is raised somewhere outside errors.ts (no code is documented that nothing throws)', () => {
  const root = new URL('../../', import.meta.url);
  const sources = ['src', 'agent', 'strategies', 'simulator', 'experiments', 'notebooks']
    .flatMap((dir) =>
      readdirSync(new URL(dir, root), { recursive: true, encoding: 'utf8' })
        .filter((f) => f.endsWith('.ts'))
        .map((f) => join(dir, f)),
    )
    .filter((f) => f !== join('src', 'core', 'errors.ts'))
    .map((f) => readFileSync(new URL(f, root), 'utf8'))
    .join('\n');
  const unused = Object.keys(errorCodes).filter((code) => !sources.includes(`'${code}'`));
  expect(unused).toEqual([]);
});
