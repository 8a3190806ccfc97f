import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { PortbanditError, MAX_PORT, VERSION } from '../src/core/index.js';
import type { BootstrapSpec, CellSpec, ExperimentSpec, RecordingSpec, StrategyEntry } from './types.js';

/** Defaults applied when a spec leaves a field out. */
export const specDefaults = {
  batch: 256,
  order: 'recording',
  bootstrap: { replicates: 500, confidence: 0.95 },
} as const;

type Json = Record<string, unknown>;

function fail(where: string, message: string): never {
  throw new PortbanditError('PB_ERR_EXPERIMENT', message, { where });
}

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function checkKeys(obj: Json, allowed: readonly string[], where: string): void {
  for (const key of Object.keys(obj)) {
    if (!allowed.includes(key)) fail(`${where}.${key}`, `unknown field (expected one of: ${allowed.join(', ')})`);
  }
}

function str(value: unknown, where: string): string {
  if (typeof value !== 'string' || value.trim() === '') fail(where, `expected a non-empty string, got ${JSON.stringify(value)}`);
  return value;
}

function int(value: unknown, where: string, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    fail(where, `expected an integer from ${min} to ${max}, got ${JSON.stringify(value)}`);
  }
  return value;
}

function seedString(value: unknown, where: string): string {
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  if (typeof value === 'string' && value !== '') return value;
  return fail(where, `expected a seed (string or number), got ${JSON.stringify(value)}`);
}

function list(value: unknown, where: string): unknown[] {
  if (!Array.isArray(value) || value.length === 0) fail(where, `expected a non-empty array, got ${JSON.stringify(value)}`);
  return value;
}

function portList(value: unknown, where: string): number[] | undefined {
  if (value === undefined) return undefined;
  if (!Array.isArray(value)) fail(where, `expected an array of ports, got ${JSON.stringify(value)}`);
  return value.map((p, i) => int(p, `${where}[${i}]`, 1, MAX_PORT));
}

function parseRecording(raw: unknown, where: string, baseDir: string): RecordingSpec {
  if (!isObject(raw)) fail(where, 'expected an object with "profile" (generated) or "file" (a recording file)');
  if (raw.file !== undefined) {
    checkKeys(raw, ['file', 'name'], where);
    const file = str(raw.file, `${where}.file`);
    const path = isAbsolute(file) ? file : resolve(baseDir, file);
    const name = raw.name === undefined ? (file.split('/').pop() ?? file).replace(/\.ndjson$/, '') : str(raw.name, `${where}.name`);
    return Object.freeze({ kind: 'file', name, path });
  }
  if (raw.profile === undefined) fail(where, 'expected "profile" (a generated scope) or "file" (a recording file)');
  checkKeys(raw, ['profile', 'hosts', 'epochs', 'seed', 'name'], where);
  const profile = str(raw.profile, `${where}.profile`);
  return Object.freeze({
    kind: 'generated',
    name: raw.name === undefined ? profile : str(raw.name, `${where}.name`),
    profile,
    hosts: int(raw.hosts, `${where}.hosts`, 1, 16_777_216),
    epochs: int(raw.epochs, `${where}.epochs`, 1, 10_000),
    seed: raw.seed === undefined ? null : seedString(raw.seed, `${where}.seed`),
  });
}

function parseStrategy(raw: unknown, where: string): StrategyEntry {
  if (typeof raw === 'string') return Object.freeze({ label: str(raw, where), strategy: raw, params: Object.freeze({}) });
  if (!isObject(raw)) fail(where, 'expected a strategy name or an object {"strategy": NAME, "label"?, "params"?, ...}');
  checkKeys(raw, ['label', 'strategy', 'params', 'mustHave', 'exclude', 'maxPerHost', 'pseudoThreshold'], where);
  const strategy = str(raw.strategy, `${where}.strategy`);
  if (raw.params !== undefined && !isObject(raw.params)) fail(`${where}.params`, `expected an object, got ${JSON.stringify(raw.params)}`);
  const entry: StrategyEntry = {
    label: raw.label === undefined ? strategy : str(raw.label, `${where}.label`),
    strategy,
    params: Object.freeze({ ...((raw.params as Json | undefined) ?? {}) }),
    ...(raw.mustHave !== undefined && { mustHave: portList(raw.mustHave, `${where}.mustHave`) }),
    ...(raw.exclude !== undefined && { exclude: portList(raw.exclude, `${where}.exclude`) }),
    ...(raw.maxPerHost !== undefined && { maxPerHost: int(raw.maxPerHost, `${where}.maxPerHost`, 1, MAX_PORT) }),
    ...(raw.pseudoThreshold !== undefined && { pseudoThreshold: int(raw.pseudoThreshold, `${where}.pseudoThreshold`, 1, MAX_PORT) }),
  };
  return Object.freeze(entry);
}

function parseBootstrap(raw: unknown, where: string, name: string): BootstrapSpec {
  if (raw === undefined) return Object.freeze({ ...specDefaults.bootstrap, seed: name });
  if (!isObject(raw)) fail(where, `expected an object {"replicates", "confidence", "seed"}, got ${JSON.stringify(raw)}`);
  checkKeys(raw, ['replicates', 'confidence', 'seed'], where);
  const confidence = raw.confidence ?? specDefaults.bootstrap.confidence;
  if (typeof confidence !== 'number' || !(confidence > 0.5 && confidence < 1)) {
    fail(`${where}.confidence`, `expected a number between 0.5 and 1 (exclusive), got ${JSON.stringify(confidence)}`);
  }
  return Object.freeze({
    replicates: raw.replicates === undefined ? specDefaults.bootstrap.replicates : int(raw.replicates, `${where}.replicates`, 10, 100_000),
    confidence,
    seed: raw.seed === undefined ? name : seedString(raw.seed, `${where}.seed`),
  });
}

function unique(values: readonly string[], where: string, what: string): void {
  const seen = new Set<string>();
  for (const v of values) {
    if (seen.has(v)) fail(where, `duplicate ${what} "${v}" (give each entry a distinct "label"/"name")`);
    seen.add(v);
  }
}

/**
 * Validate a parsed JSON experiment spec into a frozen ExperimentSpec. `source` names the file
 * in error messages; relative recording paths resolve against `baseDir`.
 */
export function parseExperimentSpec(raw: unknown, source = 'experiment', baseDir = process.cwd()): ExperimentSpec {
  const where = source;
  if (!isObject(raw)) fail(where, 'expected a JSON object');
  checkKeys(
    raw,
    [
      '$schema',
      'name',
      'description',
      'recordings',
      'strategies',
      'budgets',
      'seeds',
      'batch',
      'order',
      'baseline',
      'bootstrap',
      'focusBudget',
    ],
    where,
  );
  const name = raw.name === undefined ? 'experiment' : str(raw.name, `${where}.name`);
  const description =
    raw.description === undefined
      ? ''
      : typeof raw.description === 'string'
        ? raw.description
        : fail(`${where}.description`, 'expected a string');
  const recordings = list(raw.recordings, `${where}.recordings`).map((r, i) => parseRecording(r, `${where}.recordings[${i}]`, baseDir));
  unique(
    recordings.map((r) => r.name),
    `${where}.recordings`,
    'recording name',
  );
  const strategies = list(raw.strategies, `${where}.strategies`).map((s, i) => parseStrategy(s, `${where}.strategies[${i}]`));
  unique(
    strategies.map((s) => s.label),
    `${where}.strategies`,
    'strategy label',
  );
  const budgets = list(raw.budgets, `${where}.budgets`).map((b, i) => int(b, `${where}.budgets[${i}]`, 1, MAX_PORT));
  unique(budgets.map(String), `${where}.budgets`, 'budget');
  const seeds = list(raw.seeds, `${where}.seeds`).map((s, i) => seedString(s, `${where}.seeds[${i}]`));
  unique(seeds, `${where}.seeds`, 'seed');
  const batch = raw.batch === undefined ? specDefaults.batch : int(raw.batch, `${where}.batch`, 1, 1_000_000);
  const order = raw.order === undefined ? specDefaults.order : raw.order;
  if (order !== 'shuffled' && order !== 'recording')
    fail(`${where}.order`, `expected "shuffled" or "recording", got ${JSON.stringify(order)}`);
  const baseline = raw.baseline === undefined ? strategies[0]!.label : str(raw.baseline, `${where}.baseline`);
  if (!strategies.some((s) => s.label === baseline)) {
    fail(`${where}.baseline`, `"${baseline}" is not one of the strategy labels (${strategies.map((s) => s.label).join(', ')})`);
  }
  const sortedBudgets = [...budgets].sort((a, b) => a - b);
  let focusBudget: number;
  if (raw.focusBudget === undefined) {
    focusBudget = sortedBudgets.includes(100) ? 100 : sortedBudgets[Math.floor((sortedBudgets.length - 1) / 2)]!;
  } else {
    focusBudget = int(raw.focusBudget, `${where}.focusBudget`, 1, MAX_PORT);
    if (!budgets.includes(focusBudget))
      fail(`${where}.focusBudget`, `expected one of the budgets (${sortedBudgets.join(', ')}), got ${focusBudget}`);
  }
  return Object.freeze({
    name,
    description,
    recordings: Object.freeze(recordings),
    strategies: Object.freeze(strategies),
    budgets: Object.freeze(sortedBudgets),
    seeds: Object.freeze(seeds),
    batch,
    order,
    baseline,
    bootstrap: parseBootstrap(raw.bootstrap, `${where}.bootstrap`, name),
    focusBudget,
  });
}

/** Read and validate an experiment spec file (JSON). */
export function loadExperimentSpec(file: string): ExperimentSpec {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new PortbanditError('PB_ERR_IO', `cannot read experiment spec: ${(error as Error).message}`, { where: file, cause: error });
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    throw new PortbanditError('PB_ERR_EXPERIMENT', `not valid JSON: ${(error as Error).message}`, { where: file, cause: error });
  }
  return parseExperimentSpec(raw, file, dirname(resolve(file)));
}

/** The full grid, in a stable order: recording, strategy, budget, seed. */
export function expandCells(spec: ExperimentSpec): CellSpec[] {
  const cells: CellSpec[] = [];
  for (const recording of spec.recordings) {
    for (const strategy of spec.strategies) {
      for (const budget of spec.budgets) {
        for (const seed of spec.seeds)
          cells.push(Object.freeze({ recording, strategy, budget, seed, batch: spec.batch, order: spec.order }));
      }
    }
  }
  return cells;
}

/** JSON with object keys sorted, so equal specs hash equally whatever their field order. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (isObject(value)) {
    const keys = Object.keys(value)
      .filter((k) => value[k] !== undefined)
      .sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(value[k])}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/**
 * The cache key of a cell: a hash of its full spec and the software version, so a changed
 * cell or a new release reruns and everything else is reused. Labels are not part of what is
 * computed, so renaming does not rerun; a recording file's content hash is (`recordingHash`), and
 * so is the runner's code fingerprint (`code`, experiments/fingerprint.ts).
 */
export function cellKey(cell: CellSpec, options: { version?: string; recordingHash?: string; code?: string } = {}): string {
  const { name: _name, ...recording } = cell.recording;
  const { label: _label, ...strategy } = cell.strategy;
  const version = options.version ?? VERSION;
  const payload = canonicalJson({
    recording,
    recordingHash: options.recordingHash,
    strategy,
    budget: cell.budget,
    seed: cell.seed,
    batch: cell.batch,
    order: cell.order,
    version,
    code: options.code,
  });
  return createHash('sha256').update(payload).digest('hex').slice(0, 32);
}

/** The seed a cell's recording is generated with. */
export function recordingSeed(cell: CellSpec): string {
  return cell.recording.kind === 'generated' ? (cell.recording.seed ?? cell.seed) : '';
}

/** The spec back in its input form (what `parseExperimentSpec` accepts): for spec.json and reports. */
export function formatExperimentSpec(spec: ExperimentSpec): Record<string, unknown> {
  return {
    name: spec.name,
    ...(spec.description !== '' && { description: spec.description }),
    recordings: spec.recordings.map((r) =>
      r.kind === 'file'
        ? { name: r.name, file: r.path }
        : { name: r.name, profile: r.profile, hosts: r.hosts, epochs: r.epochs, ...(r.seed !== null && { seed: r.seed }) },
    ),
    strategies: spec.strategies.map((s) => ({ ...s, params: { ...s.params } })),
    budgets: spec.budgets,
    seeds: spec.seeds,
    batch: spec.batch,
    order: spec.order,
    baseline: spec.baseline,
    bootstrap: spec.bootstrap,
    focusBudget: spec.focusBudget,
  };
}
