import { readFileSync } from 'node:fs';
import { fc, test } from '@fast-check/vitest';
import { describe, expect } from 'vitest';
import { configDefaults, configSchema, renderConfigTable, resolveConfig, settings, withConfigTable } from '../../src/coordinator/config.js';
import { buildProgram } from '../../src/cli/main.js';

const integerKeys = Object.entries(settings).filter(([, s]) => s.type === 'integer');

describe('the config schema', () => {
  test('docs/coordinator.md carries the settings table generated from it (regenerate with npm run docs)', () => {
    const doc = readFileSync(new URL('../../docs/coordinator.md', import.meta.url), 'utf8');
    expect(doc).toContain(renderConfigTable());
    expect(withConfigTable(doc)).toBe(doc);
    for (const key of Object.keys(configSchema.properties))
      expect(renderConfigTable()).toContain(`| ${key} | ${settings[key as keyof typeof settings].env} |`);
  });

  test('its defaults are the resolved config without input, and frozen', () => {
    expect(resolveConfig({ env: {} })).toEqual(configDefaults);
    expect(Object.isFrozen(configDefaults)).toBe(true);
    expect(Object.isFrozen(configDefaults.allowedScripts)).toBe(true);
  });

  test('serve --help shows each flag with its env and default from the schema', async () => {
    const program = await buildProgram(['serve']);
    const help = program.commands
      .find((c) => c.name() === 'serve')!
      .helpInformation()
      .replace(/\s+/g, ' ');
    for (const s of Object.values(settings)) {
      if (s.flag === undefined) continue;
      expect(help).toContain(s.flag);
      expect(help).toContain(`env ${s.env}`);
    }
    expect(help).toContain('default 900');
    expect(help).toContain('default 1 GiB');
  });

  test.prop([fc.constantFrom(...integerKeys), fc.integer({ min: -1_000_000, max: 2 ** 41 })])(
    'an integer setting from the environment is taken inside its bounds and refused outside, naming the variable',
    ([key, s], n) => {
      const resolve = () => resolveConfig({ env: { [s.env]: String(n) } });
      if (n >= s.minimum! && n <= s.maximum!) expect(resolve()[key as keyof typeof settings]).toBe(n);
      else expect(resolve).toThrow(expect.objectContaining({ code: 'PB_ERR_CONFIG', where: `env ${s.env}` }) as unknown as Error);
    },
  );

  test('a list from the environment is split on commas; a bad name is refused with what was expected', () => {
    expect(resolveConfig({ env: { PORTBANDIT_ALLOWED_SCRIPTS: 'ssl-cert, banner' } }).allowedScripts).toEqual(['ssl-cert', 'banner']);
    expect(() => resolveConfig({ env: { PORTBANDIT_ALLOWED_SCRIPTS: 'ssl-cert,Bad Name' } })).toThrow(
      /env PORTBANDIT_ALLOWED_SCRIPTS: allowedScripts: expected a list of NSE script names/,
    );
    expect(() => resolveConfig({ flags: { logLevel: 'loud' } })).toThrow(/--log-level: logLevel: expected one of fatal, error/);
    expect(() => resolveConfig({ flags: { host: '  ' } })).toThrow(/--host: host: expected a non-empty string/);
  });
});
