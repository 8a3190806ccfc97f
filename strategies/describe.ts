import type { ParameterSpec } from './types.js';

function formatDefault(value: unknown): string {
  if (Array.isArray(value)) return value.length === 0 ? '`[]`' : `\`${value.join(',')}\``;
  return `\`${String(value)}\``;
}

function formatRange(spec: ParameterSpec): string {
  if (spec.min === undefined && spec.max === undefined) return '';
  return `${spec.min ?? '-inf'} to ${spec.max ?? 'inf'}`;
}

/** A strategy's parameters as a Markdown table (docs/strategies.md is written from these). */
export function renderParameterTable(specs: readonly ParameterSpec[]): string {
  if (specs.length === 0) return '_No parameters._\n';
  const rows = specs.map(
    (s) => `| \`${s.name}\` | ${s.type} | ${formatDefault(s.default)} | ${formatRange(s)} | ${s.description.replaceAll('|', '\\|')} |`,
  );
  return ['| parameter | type | default | range | meaning |', '|---|---|---|---|---|', ...rows, ''].join('\n');
}

/** A count for explain()'s notes: whole numbers as they are, others to one decimal (decayed counts). */
export function formatCount(x: number): string {
  return Number.isInteger(x) ? String(x) : x.toFixed(1);
}

/** `n noun`, with the plural when n is not 1 (`plural` defaults to noun + "s"). */
export function countOf(n: number, noun: string, plural = `${noun}s`): string {
  return `${formatCount(n)} ${n === 1 ? noun : plural}`;
}
