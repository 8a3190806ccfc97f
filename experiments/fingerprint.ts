import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Folders whose code decides a cell's numbers (relative to the project or dist/ root). */
const CODE_DIRS = ['strategies', 'simulator', 'src/recording', 'src/catalog', 'src/core'];
/** And the file that reduces a simulation to a cell's metrics (extension as this process runs it). */
const CODE_FILE = 'experiments/run-cell';

function listCode(dir: string, out: string[]): void {
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return;
  }
  for (const e of entries.sort((a, b) => a.name.localeCompare(b.name))) {
    const path = join(dir, e.name);
    if (e.isDirectory()) listCode(path, out);
    else if (/\.(js|ts)$/.test(e.name) && !e.name.endsWith('.d.ts')) out.push(path);
  }
}

let cached: string | undefined;

/**
 * A hash of the code that computes a cell (strategies, simulator, recording reader, catalog,
 * core, and the metrics reduction), as this process runs it (TypeScript sources or dist/). Part of every cell's cache key,
 * so a changed strategy reruns its cells even before the version number moves.
 */
export function codeFingerprint(): string {
  if (cached !== undefined) return cached;
  const root = fileURLToPath(new URL('..', import.meta.url));
  const files: string[] = [];
  for (const d of CODE_DIRS) listCode(join(root, d), files);
  for (const ext of ['.ts', '.js']) if (existsSync(join(root, CODE_FILE + ext))) files.push(join(root, CODE_FILE + ext));
  const hash = createHash('sha256');
  for (const f of files) {
    hash.update(f.slice(root.length));
    hash.update('\u0000');
    hash.update(readFileSync(f));
  }
  cached = hash.digest('hex').slice(0, 16);
  return cached;
}
