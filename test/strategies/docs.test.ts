import { readFileSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
import { renderParameterTable } from '../../strategies/describe.js';
import { strategies, strategyNames } from '../../strategies/registry.js';

const doc = readFileSync(new URL('../../docs/strategies.md', import.meta.url), 'utf8');

/** The text of the `## name` section (up to the next `## `), or undefined. */
function section(name: string): string | undefined {
  const start = doc.indexOf(`\n## ${name}\n`);
  if (start < 0) return undefined;
  const end = doc.indexOf('\n## ', start + 4);
  return doc.slice(start, end < 0 ? undefined : end);
}

const shared = (() => {
  const start = doc.indexOf('### Shared learning parameters');
  return start < 0 ? '' : doc.slice(start, doc.indexOf('\n## ', start));
})();

// Strategies whose sections this suite requires; others are checked once their section exists.
const REQUIRED = ['fixed', 'top-k', 'random', 'epsilon-greedy', 'ucb', 'thompson', 'lin-ucb'];

describe('docs/strategies.md', () => {
  test.each(strategyNames)('lists every parameter of %s with its default (tables from the ParameterSpecs)', (name) => {
    const text = section(name);
    if (text === undefined) {
      expect(REQUIRED, `docs/strategies.md has no "## ${name}" section`).not.toContain(name);
      console.error(`docs/strategies.md: no section for ${name} yet; its parameters are not checked`);
      return;
    }
    for (const spec of strategies[name].parameters) {
      const row = renderParameterTable([spec]).split('\n')[2]!;
      expect(text.includes(row) || shared.includes(row), `parameter ${spec.name} of ${name}: expected the row\n${row}`).toBe(true);
    }
  });
});
