#!/usr/bin/env node
// `npm test` (everything) and `npm run test:fast` (everything but the lab): the same checks as
// `npm run lint && npm run typecheck && npm run build && vitest run`, arranged for a 2-core machine.
//
// 1. Emit dist/ without type-checking (`tsc --noCheck`, a few seconds): the CLI tests run dist/.
// 2. Then at once: ESLint, the full type-check (`tsc --noEmit`, which checks every file the build
//    emits, and the tests), vitest's unit project and (not with --fast) its lab project, as two
//    vitest processes: vitest runs a project whose files go one at a time (the lab: one per
//    machine) only after the parallel ones, whereas the lab's files mostly wait on the network and
//    can run beside the CPU-bound rest.
//
// The unit run's output streams; the others' is printed when each finishes. The exit code is
// non-zero when any step failed, and a summary names each step with its time.
/* global process, URL */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const bin = (name) => join(root, 'node_modules', '.bin', name);
const fast = process.argv.includes('--fast');
const vitestArgs = process.argv.slice(2).filter((a) => a !== '--fast');

/** Run one step; `stream` passes its output through, otherwise it is printed once the step ends. */
function step(name, command, args, { stream = false, env = process.env } = {}) {
  const started = Date.now();
  process.stderr.write(`[test] ${name}: started (${[command.replace(root, ''), ...args].join(' ')})\n`);
  return new Promise((resolve) => {
    const child = spawn(command, args, { cwd: root, env, stdio: stream ? 'inherit' : ['ignore', 'pipe', 'pipe'] });
    let output = '';
    if (!stream) {
      child.stdout.on('data', (d) => (output += d));
      child.stderr.on('data', (d) => (output += d));
    }
    const finish = (code, error) => {
      const seconds = ((Date.now() - started) / 1000).toFixed(1);
      if (output.trim() !== '') process.stdout.write(`\n[test] ${name} output:\n${output}\n`);
      if (error) process.stderr.write(`[test] ${name}: could not start: ${error.message}\n`);
      process.stderr.write(`[test] ${name}: ${code === 0 ? 'passed' : `FAILED (exit ${code})`} in ${seconds} s\n`);
      resolve({ name, ok: code === 0, seconds });
    };
    child.once('error', (error) => finish(-1, error));
    child.once('close', (code, signal) => finish(code ?? signal));
  });
}

// dist/ is fresh from step 1: tests that start the CLI as a process start the build, not the
// sources through tsx (test/helpers/cli-process.ts).
const testEnv = { ...process.env, PORTBANDIT_TEST_BUILT_CLI: '1' };
const started = Date.now();
const results = [await step('build', bin('tsc'), ['-p', 'tsconfig.build.json', '--noCheck'])];
if (results[0].ok) {
  results.push(
    ...(await Promise.all([
      step('lint', 'npm', ['run', '--silent', 'lint']),
      step('typecheck', bin('tsc'), ['-p', 'tsconfig.json', '--noEmit']),
      step(
        fast ? 'vitest (without the lab)' : 'vitest unit',
        bin('vitest'),
        ['run', '--project', 'unit', '--passWithNoTests', ...vitestArgs],
        { stream: true, env: testEnv },
      ),
      ...(fast
        ? []
        : [step('vitest lab', bin('vitest'), ['run', '--project', 'lab', '--passWithNoTests', ...vitestArgs], { env: testEnv })]),
    ])),
  );
}
const failed = results.filter((r) => !r.ok);
process.stderr.write(
  `[test] ${failed.length === 0 ? 'all passed' : `FAILED: ${failed.map((r) => r.name).join(', ')}`} in ${((Date.now() - started) / 1000).toFixed(1)} s (${results.map((r) => `${r.name} ${r.seconds} s`).join(', ')})\n`,
);
process.exitCode = failed.length === 0 && results.length > 1 ? 0 : 1;
