import { PortbanditError } from '../core/index.js';
import { formatRange, parseTargetSpec } from './address.js';
import { asDnsName } from './names.js';

/** One scope line after parsing: the normalised range text and its tags. */
export interface ScopeLine {
  readonly range: string;
  readonly tags: readonly string[];
}

const TAG = /^[A-Za-z0-9_.:-]{1,64}$/;

/** Validate a tag name (letters, digits, `_ . : -`, up to 64 characters). */
export function checkTag(tag: string, where: string): string {
  const t = tag.trim();
  if (!TAG.test(t))
    throw new PortbanditError('PB_ERR_TAG', `expected a tag of letters, digits, "_.:-" (1-64 chars), got ${JSON.stringify(tag)}`, {
      where,
    });
  return t;
}

/**
 * Normalise a target spec to the store's canonical text: an address, a CIDR (host bits cleared)
 * or "first-last" when the range is not one aligned block.
 */
export function normalizeRange(spec: string, where: string): string {
  return formatRange(parseTargetSpec(spec, where));
}

/** Normalise one scope entry (range or DNS name + tags, tags de-duplicated and sorted). */
export function normalizeScopeLine(range: string, tags: readonly string[], where: string): ScopeLine {
  const clean = [...new Set(tags.map((t, i) => checkTag(t, `${where}.tags[${i}]`)))].sort();
  return { range: normalizeTarget(range, where), tags: clean };
}

/** An address, CIDR or range in canonical text, else a DNS name in lower case (names.ts), else the address error. */
function normalizeTarget(spec: string, where: string): string {
  try {
    return normalizeRange(spec, where);
  } catch (error) {
    const name = asDnsName(spec);
    if (name !== undefined) return name;
    throw error;
  }
}

/**
 * Parse Natlas's scope/blocklist import format: one `ip_or_cidr,tag1,tag2` per line, blank lines
 * and `#` comments ignored. Ranges "first-last" are accepted too. Errors name `source:line`.
 */
export function parseScopeFile(text: string, source: string): ScopeLine[] {
  const out: ScopeLine[] = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.replace(/#.*/, '').trim();
    if (line === '') continue;
    const [target, ...tags] = line.split(',').map((s) => s.trim());
    out.push(
      normalizeScopeLine(
        target!,
        tags.filter((t) => t !== ''),
        `${source}:${i + 1}`,
      ),
    );
  }
  return out;
}

/** Write entries in Natlas's `ip_or_cidr,tag1,tag2` format (one per line). */
export function formatScopeFile(entries: readonly ScopeLine[]): string {
  return entries.map((e) => [e.range, ...e.tags].join(',') + '\n').join('');
}
