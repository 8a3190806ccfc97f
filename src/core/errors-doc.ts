import { errorCodes } from './errors.js';

/** docs/errors.md, rendered from the error-code table (a test keeps the file in sync). */
export function renderErrorsMarkdown(): string {
  const rows = Object.entries(errorCodes).map(([code, { status, summary }]) => `| \`${code}\` | ${status} | ${summary} |`);
  return [
    '# Error codes',
    '',
    'Every error portbandit raises on purpose carries a stable code. On the command line it is printed',
    'after the message (`portbandit: file.ndjson:12: expected ... [PB_ERR_RECORDING]`, exit status 2); over',
    'HTTP it is the `code` field of the error body, with the HTTP status below. Messages name the input',
    'and the position (file:line, flag, field) and say what was expected.',
    '',
    '| code | HTTP status | meaning |',
    '| --- | --- | --- |',
    ...rows,
    '',
  ].join('\n');
}
