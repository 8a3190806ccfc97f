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
// non-zero when any step failed, and a summary names each step with its time. A failed step is
// recapped last (its failed tests, read from vitest's JSON report, and its output's last lines):
// a log that keeps only its tail still says what failed.
/* global process, URL */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stripVTControlCharacters } from 'node:util';

const root = fileURLToPath(new URL('..', import.meta.url));
const bin = (name) => join(root, 'node_modules', '.bin', name);
const fast = process.argv.includes('--fast');
const vitestArgs = process.argv.slice(2).filter((a) => a !== '--fast');

/** Run one step; `stream` passes its output through, otherwise it is printed once the step ends. */
function step(name, command, args, { stream = false, env = process.env, report } = {}) {
  const started = Date.now();
  process.stderr.write(`[test] ${name}: started (${[command.replace(root, ''), ...args].join(' ')})\n`);
  return new Promise((resolve) => {
    const child = spawn(command, args, { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    let tail = '';
    const keep = (d) => {
      tail = (tail + d).slice(-20_000);
      if (!stream) output += d;
    };
    if (stream) {
      child.stdout.on('data', (d) => (process.stdout.write(d), keep(d)));
      child.stderr.on('data', (d) => (process.stderr.write(d), keep(d)));
    } else {
      child.stdout.on('data', keep);
      child.stderr.on('data', keep);
    }
    const finish = (code, error) => {
      const seconds = ((Date.now() - started) / 1000).toFixed(1);
      if (output.trim() !== '') process.stdout.write(`\n[test] ${name} output:\n${output}\n`);
      if (error) process.stderr.write(`[test] ${name}: could not start: ${error.message}\n`);
      process.stderr.write(`[test] ${name}: ${code === 0 ? 'passed' : `FAILED (exit ${code})`} in ${seconds} s\n`);
      resolve({ name, ok: code === 0, seconds, tail, report });
    };
    child.once('error', (error) => finish(-1, error));
    child.once('close', (code, signal) => finish(code ?? signal));
  });
}

/** vitest's arguments for a run that also writes its JSON report to `file` (for the recap). */
const reporting = (file) => ['--reporter=default', '--reporter=json', `--outputFile.json=${file}`];

/** The failed tests of a vitest JSON report, one block each, or null when the report is unreadable. */
function failedTests(file) {
  let report;
  try {
    report = JSON.parse(readFileSync(file, 'utf8'));
  } catch {
    return null;
  }
  const blocks = [];
  for (const suite of report.testResults ?? []) {
    const where = suite.name.replace(root, '');
    if (suite.message) blocks.push(`${where}: ${suite.message}`);
    for (const test of suite.assertionResults ?? []) {
      if (test.status !== 'failed') continue;
      const message = (test.failureMessages ?? [])
        .join('\n')
        .split('\n')
        .filter((line) => !/^\s+at .*(node_modules|node:internal|<anonymous>)/.test(line))
        .slice(0, 8)
        .join('\n    ');
      blocks.push(`${where} > ${test.fullName}\n    ${message}`);
    }
  }
  return blocks;
}

/** What a failed step printed that says why: its failed tests and its output's last lines. */
function recap(result) {
  const lines = [`[test] ${result.name} FAILED; recap:`];
  const blocks = result.report ? failedTests(result.report) : null;
  if (blocks !== null) {
    lines.push(blocks.length === 0 ? '  no failed test in the report (an error outside the tests, see below)' : `  failed:`);
    for (const block of blocks) lines.push(`  - ${block}`);
  }
  // Strip colours; keep the last lines, which hold vitest's summary (and its errors outside tests).
  const last = stripVTControlCharacters(result.tail).trimEnd().split('\n').slice(-25);
  lines.push(`  its last ${last.length} lines:`, ...last.map((l) => `  | ${l}`));
  return `${lines.join('\n')}\n`;
}

const reports = mkdtempSync(join(tmpdir(), 'portbandit-test-'));

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
        ['run', '--project', 'unit', '--passWithNoTests', ...reporting(join(reports, 'unit.json')), ...vitestArgs],
        { stream: true, env: testEnv, report: join(reports, 'unit.json') },
      ),
      ...(fast
        ? []
        : [
            step(
              'vitest lab',
              bin('vitest'),
              ['run', '--project', 'lab', '--passWithNoTests', ...reporting(join(reports, 'lab.json')), ...vitestArgs],
              { env: testEnv, report: join(reports, 'lab.json') },
            ),
          ]),
    ])),
  );
}
const failed = results.filter((r) => !r.ok);
for (const result of failed) process.stderr.write(recap(result));
rmSync(reports, { recursive: true, force: true });
process.stderr.write(
  `[test] ${failed.length === 0 ? 'all passed' : `FAILED: ${failed.map((r) => r.name).join(', ')}`} in ${((Date.now() - started) / 1000).toFixed(1)} s (${results.map((r) => `${r.name} ${r.seconds} s`).join(', ')})\n`,
);
process.exitCode = failed.length === 0 && results.length > 1 ? 0 : 1;
