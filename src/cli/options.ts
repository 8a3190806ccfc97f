import { InvalidArgumentError } from 'commander';
import { PortbanditError } from '../core/index.js';

/** Commander argument parsers that reject bad flag values with a message naming the value. */
export function parseInteger(min = Number.MIN_SAFE_INTEGER, max = Number.MAX_SAFE_INTEGER) {
  return (value: string): number => {
    if (!/^-?\d+$/.test(value.trim())) throw new InvalidArgumentError(`expected an integer, got "${value}".`);
    const n = Number(value);
    if (n < min || n > max) throw new InvalidArgumentError(`expected an integer from ${min} to ${max}, got ${n}.`);
    return n;
  };
}

export function parseNumber(min = -Infinity, max = Infinity) {
  return (value: string): number => {
    const n = Number(value);
    if (value.trim() === '' || !Number.isFinite(n)) throw new InvalidArgumentError(`expected a number, got "${value}".`);
    if (n < min || n > max) throw new InvalidArgumentError(`expected a number from ${min} to ${max}, got ${n}.`);
    return n;
  };
}

/** Collects repeated `--param k=v` flags into an object. */
export function collectKeyValue(value: string, previous: Record<string, string> = {}): Record<string, string> {
  const i = value.indexOf('=');
  if (i <= 0) throw new InvalidArgumentError(`expected key=value, got "${value}".`);
  return { ...previous, [value.slice(0, i).trim()]: value.slice(i + 1) };
}

/** Collects a repeatable flag into an array. */
export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

const DURATION_UNITS: Record<string, number> = { s: 1, m: 60, min: 60, h: 3600, d: 86400 };

/** A duration flag in seconds: `3600`, `90s`, `30m`, `24h`, `7d`. */
export function parseDuration(value: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*(s|m|min|h|d)?$/.exec(value.trim());
  if (!m) throw new InvalidArgumentError(`expected a duration like 3600, 30m, 24h or 7d, got "${value}".`);
  const seconds = Math.round(Number(m[1]) * DURATION_UNITS[m[2] ?? 's']!);
  if (seconds < 1 || seconds > 366 * 86400) throw new InvalidArgumentError(`expected a duration from 1 s to 366 d, got "${value}".`);
  return seconds;
}

/** A point in time: an ISO date or milliseconds since the Unix epoch (`--since`, `--until`). */
export function parseTime(value: string): number {
  const t = /^\d+$/.test(value) ? Number(value) : Date.parse(value);
  if (!Number.isFinite(t))
    throw new PortbanditError('PB_ERR_FLAG_VALUE', `expected an ISO date or milliseconds, got ${JSON.stringify(value)}`, {
      where: '--since/--until',
    });
  return t;
}
