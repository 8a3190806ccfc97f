import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { afterAll, expect, test } from 'vitest';

const child = fileURLToPath(new URL('../helpers/lab-lock-child.ts', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'pb-lab-lock-'));
// A private state path: these tests never touch the machine's real lab lock.
const env = { PORTBANDIT_LAB_STATE: join(dir, 'state.json') };
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function run(...args: string[]) {
  return execa(process.execPath, ['--import', 'tsx', child, ...args], { env, timeout: 50_000 });
}

test('one process at a time holds the lab, however many start together', { timeout: 60_000 }, async () => {
  const log = join(dir, 'log');
  writeFileSync(log, '');
  await Promise.all(Array.from({ length: 4 }, () => run('hold', log)));
  // With a lock two processes can both win, an "enter" follows another "enter" before its "leave".
  const lines = readFileSync(log, 'utf8').trim().split('\n');
  expect(lines).toHaveLength(8);
  for (let i = 0; i < lines.length; i += 2) {
    const [what, pid] = lines[i]!.split(' ');
    expect(what).toBe('enter');
    expect(lines[i + 1]).toBe(`leave ${pid}`);
  }
});

test('a lock held by a process that died is free at once', { timeout: 30_000 }, async () => {
  await run('die');
  // The first child never let go; the second still gets the lock within its 1 s wait.
  await expect(run('die')).resolves.toMatchObject({ exitCode: 0 });
});
