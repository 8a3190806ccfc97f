import { readFileSync } from 'node:fs';

function findVersion(): string {
  // Works from src/ (tests) and dist/src/ (built): walk up to the package.json.
  for (const rel of ['../../package.json', '../../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(rel, import.meta.url), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'portbandit' && pkg.version) return pkg.version;
    } catch {
      // try the next level
    }
  }
  return '0.0.0';
}

/** portbandit's version, written into every result file. */
export const VERSION = findVersion();
