import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const SOURCE = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
const BUILT = fileURLToPath(new URL('../../dist/src/cli/main.js', import.meta.url));

/**
 * Node's arguments that start the real `portbandit` CLI in a process of its own (append the
 * command and its flags; run with `process.execPath`). Under `npm test` (scripts/test.mjs, which
 * emits dist/ first and sets PORTBANDIT_TEST_BUILT_CLI=1) that is the build, which starts about a
 * second sooner than the TypeScript sources through tsx; a test file run on its own uses the
 * sources, so it never runs a stale dist/.
 */
export function cliProcessArgs(): string[] {
  return process.env.PORTBANDIT_TEST_BUILT_CLI === '1' && existsSync(BUILT) ? [BUILT] : ['--import', 'tsx', SOURCE];
}
