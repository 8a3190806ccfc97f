import { PortbanditError, MAX_PORT, PortRanges, isPort } from '../src/core/index.js';
import type { CommonOptions, ParameterSpec } from './types.js';

/** Defaults for the options every strategy takes. */
export const commonDefaults = {
  budget: 100,
  maxPerHost: MAX_PORT,
  mustHave: [] as readonly number[],
  exclude: [] as readonly number[],
  pseudoThreshold: 1000,
} as const;

export interface CommonOptionsInput {
  budget?: number;
  maxPerHost?: number;
  mustHave?: readonly number[];
  exclude?: readonly number[];
  pseudoThreshold?: number;
}

function ports(list: readonly number[] | undefined, field: string): number[] {
  if (list === undefined) return [];
  const seen = new Set<number>();
  const out: number[] = [];
  for (const p of list) {
    if (!isPort(p))
      throw new PortbanditError('PB_ERR_STRATEGY_OPTION', `expected ports 1-65535, got ${JSON.stringify(p)}`, { where: field });
    if (!seen.has(p)) out.push(p);
    seen.add(p);
  }
  return out;
}

/** Validate and freeze the common options (budget, caps, must-have and excluded ports). */
export function resolveCommonOptions(input: CommonOptionsInput = {}): CommonOptions {
  const budget = input.budget ?? commonDefaults.budget;
  const maxPerHost = input.maxPerHost ?? commonDefaults.maxPerHost;
  const pseudoThreshold = input.pseudoThreshold ?? commonDefaults.pseudoThreshold;
  if (!Number.isFinite(budget) || budget < 0 || budget > MAX_PORT) {
    throw new PortbanditError('PB_ERR_STRATEGY_OPTION', `expected a budget between 0 and ${MAX_PORT} probes per host, got ${budget}`, {
      where: 'budget',
    });
  }
  if (!Number.isInteger(maxPerHost) || maxPerHost < 1 || maxPerHost > MAX_PORT) {
    throw new PortbanditError('PB_ERR_STRATEGY_OPTION', `expected an integer 1-${MAX_PORT}, got ${maxPerHost}`, { where: 'maxPerHost' });
  }
  if (!Number.isInteger(pseudoThreshold) || pseudoThreshold < 1) {
    throw new PortbanditError('PB_ERR_STRATEGY_OPTION', `expected a positive integer, got ${pseudoThreshold}`, {
      where: 'pseudoThreshold',
    });
  }
  const exclude = ports(input.exclude, 'exclude');
  const excluded = new Set(exclude);
  const mustHave = ports(input.mustHave, 'mustHave');
  const clash = mustHave.find((p) => excluded.has(p));
  if (clash !== undefined) {
    throw new PortbanditError('PB_ERR_STRATEGY_OPTION', `port ${clash} is both must-have and excluded`, { where: 'mustHave' });
  }
  if (mustHave.length > Math.min(budget, maxPerHost)) {
    throw new PortbanditError(
      'PB_ERR_STRATEGY_OPTION',
      `${mustHave.length} must-have ports do not fit a budget of ${budget} (cap ${maxPerHost}) per host; raise the budget or shorten the list`,
      { where: 'mustHave' },
    );
  }
  return Object.freeze({
    budget,
    maxPerHost,
    mustHave: Object.freeze(mustHave),
    exclude: Object.freeze(exclude),
    pseudoThreshold,
  });
}

/**
 * Validate raw parameters (CLI strings or JSON values) against a strategy's parameter specs.
 * Unknown names and wrong types throw PB_ERR_STRATEGY_OPTION naming the strategy and parameter.
 */
export function parseParameters<P extends object>(
  strategy: string,
  specs: readonly ParameterSpec[],
  raw: Readonly<Record<string, unknown>>,
): P {
  const out: Record<string, unknown> = {};
  const known = new Map(specs.map((s) => [s.name, s]));
  for (const name of Object.keys(raw)) {
    if (!known.has(name)) {
      const list = specs.map((s) => s.name).join(', ') || 'none';
      throw new PortbanditError('PB_ERR_STRATEGY_OPTION', `unknown parameter "${name}" for strategy ${strategy} (known: ${list})`, {
        where: `${strategy}.${name}`,
      });
    }
  }
  for (const spec of specs) {
    const value = raw[spec.name];
    out[spec.name] = value === undefined ? spec.default : coerce(strategy, spec, value);
  }
  return Object.freeze(out) as P;
}

function coerce(strategy: string, spec: ParameterSpec, value: unknown): unknown {
  const where = `${strategy}.${spec.name}`;
  const fail = (expected: string): never => {
    throw new PortbanditError('PB_ERR_STRATEGY_OPTION', `expected ${expected}, got ${JSON.stringify(value)}`, { where });
  };
  switch (spec.type) {
    case 'number':
    case 'integer': {
      const n = typeof value === 'string' && value.trim() !== '' ? Number(value) : value;
      if (typeof n !== 'number' || !Number.isFinite(n)) return fail(`a ${spec.type}`);
      if (spec.type === 'integer' && !Number.isInteger(n)) return fail('an integer');
      if ((spec.min !== undefined && n < spec.min) || (spec.max !== undefined && n > spec.max)) {
        return fail(`a ${spec.type} in [${spec.min ?? '-inf'}, ${spec.max ?? 'inf'}]`);
      }
      return n;
    }
    case 'boolean':
      if (typeof value === 'boolean') return value;
      if (value === 'true' || value === '1') return true;
      if (value === 'false' || value === '0') return false;
      return fail('true or false');
    case 'string':
      return typeof value === 'string' ? value : fail('a string');
    case 'ports':
      if (Array.isArray(value) || typeof value === 'string') {
        try {
          // The order is kept (a fixed list is probed in order), whether the list comes as JSON
          // or as a CLI string "443,22,8000-8100"; a range expands ascending; repeats count once.
          if (Array.isArray(value) && value.every((x) => typeof x === 'number')) {
            return value.map((p) => (isPort(p) ? p : fail('ports 1-65535')));
          }
          const items = typeof value === 'string' ? (value.trim() === '' ? [value] : value.split(',')) : (value as unknown[]);
          const seen = new Set<number>();
          const out: number[] = [];
          for (const item of items) {
            if (typeof item !== 'string' && typeof item !== 'number') return fail('a port list such as "22,80,8000-8100"');
            for (const p of PortRanges.parse(String(item), where)) {
              if (!seen.has(p)) out.push(p);
              seen.add(p);
            }
          }
          return out;
        } catch (error) {
          if (error instanceof PortbanditError) throw new PortbanditError('PB_ERR_STRATEGY_OPTION', error.message, { cause: error });
          throw error;
        }
      }
      return fail('a port list such as "22,80,8000-8100"');
  }
}
