import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { cruise, type ICruiseResult } from 'dependency-cruiser';
import { afterAll, describe, expect, it } from 'vitest';

/**
 * The layers (README "Development", `.dependency-cruiser.cjs`) are checked by `npm run lint`.
 * This shows the check can fail: a throwaway tree with one wrong import per rule is cruised with
 * the project's own rules, and each wrong import is reported under its rule; then the project
 * itself is cruised and has none.
 */
const root = resolve(import.meta.dirname, '../..');
const rules = createRequire(import.meta.url)(join(root, '.dependency-cruiser.cjs')) as { forbidden: unknown[] };
const AREAS = ['src', 'strategies', 'simulator', 'experiments', 'notebooks', 'agent'];

async function violations(baseDir: string): Promise<{ rule: string; from: string; to: string }[]> {
  const result = await cruise(
    AREAS,
    {
      baseDir,
      validate: true,
      ruleSet: { forbidden: rules.forbidden } as never,
      doNotFollow: { path: 'node_modules' },
      exclude: { path: '^(dist|node_modules|test|bench)/' },
      tsPreCompilationDeps: true,
      enhancedResolveOptions: { extensions: ['.ts', '.js'] },
    },
    undefined,
    { tsConfig: undefined },
  );
  const output = result.output as ICruiseResult;
  return output.summary.violations.map((v) => ({ rule: v.rule.name, from: v.from, to: v.to }));
}

describe('layers', () => {
  const tree = mkdtempSync(join(tmpdir(), 'pb-layers-'));
  afterAll(() => rmSync(tree, { recursive: true, force: true }));
  const file = (path: string, text: string) => {
    mkdirSync(dirname(join(tree, path)), { recursive: true });
    writeFileSync(join(tree, path), text);
  };

  it('reports each kind of wrong import under its rule', async () => {
    file('src/core/index.ts', "export * from './ports.js';\n");
    file('src/core/ports.ts', "import { serve } from '../coordinator/index.js';\nexport const ports = serve;\n");
    file('src/store/index.ts', "export * from './types.js';\n");
    file('src/store/types.ts', 'export type Doc = { id: string };\n');
    file('src/coordinator/index.ts', 'export const serve = 1;\n');
    file('strategies/index.ts', "import type { Doc } from '../src/store/types.js';\nexport type D = Doc;\n");
    file('agent/index.ts', "import { serve } from '../src/coordinator/index.js';\nexport const a = serve;\n");
    file('experiments/index.ts', "import { n } from '../notebooks/index.js';\nexport const e = n;\n");
    file('notebooks/index.ts', 'export const n = 1;\n');
    file('simulator/index.ts', "import type { Doc } from '../src/store/index.js';\nexport type S = Doc;\n");
    const found = await violations(tree);
    const byRule = (rule: string) => found.filter((v) => v.rule === rule).map((v) => `${v.from} -> ${v.to}`);
    expect(byRule('foundation-imports-only-foundation')).toEqual(['src/core/ports.ts -> src/coordinator/index.ts']);
    expect(byRule('no-deep-imports-across-areas')).toEqual(['strategies/index.ts -> src/store/types.ts']);
    expect(byRule('coordinator-agent-lab-side-by-side')).toEqual(['agent/index.ts -> src/coordinator/index.ts']);
    expect(byRule('experiments-below-notebooks')).toEqual(['experiments/index.ts -> notebooks/index.ts']);
    // The simulator importing the store through its index breaks no rule.
    expect(found.some((v) => v.from.startsWith('simulator/'))).toBe(false);
  });

  it('finds no wrong import in the project itself', async () => {
    expect(await violations(root)).toEqual([]);
  });
});
