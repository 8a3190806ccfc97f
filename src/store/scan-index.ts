import { PortbanditError } from '../core/index.js';
import { canonicalIp } from './ip-key.js';
import { tokenizeText, type TermField } from './query-ast.js';
import type { ScanDocument } from './types.js';

/** Cap on indexed words per scan: long script outputs must not bloat the index. */
const MAX_WORDS = 4096;

/**
 * Longest word and term value indexed (characters), in every store alike: a hostile banner with
 * one 33 KB "word" made a host unstorable in Elasticsearch (a keyword term is at most 32,766
 * bytes). Longer values stay in the stored document; they are just not searchable.
 */
export const MAX_WORD_LENGTH = 128;
export const MAX_TERM_LENGTH = 256;

/** The searchable facets of one scan, lower-cased and de-duplicated, identical in every store. */
export interface ScanIndexFields {
  readonly ports: number[];
  readonly terms: Record<TermField, string[]>;
  readonly words: string[];
  /** The scan has a web screenshot (`screenshot:true`). */
  readonly screenshot: boolean;
}

/** Extract what the query language matches from a scan (open ports only, see query-ast.ts). */
export function indexScan(scan: ScanDocument): ScanIndexFields {
  const ports = new Set<number>();
  const terms: Record<TermField, Set<string>> = {
    service: new Set(),
    product: new Set(),
    version: new Set(),
    cpe: new Set(),
    script: new Set(),
    tag: new Set(scan.tags.map((tag) => tag.toLowerCase())),
    agent: new Set([scan.agentId.toLowerCase()]),
    group: new Set(scan.group !== undefined ? [scan.group.toLowerCase()] : []),
    name: new Set((scan.names ?? []).map((n) => n.toLowerCase())),
  };
  const words = new Set<string>();
  const addWords = (text: string | undefined): void => {
    if (text === undefined) return;
    for (const word of tokenizeText(text)) if (words.size < MAX_WORDS && word.length <= MAX_WORD_LENGTH) words.add(word);
  };
  for (const port of scan.ports) {
    if (port.state !== 'open') continue;
    ports.add(port.port);
    for (const [field, value] of [
      ['service', port.service],
      ['product', port.product],
      ['version', port.version],
    ] as const) {
      if (value !== undefined && value !== '' && value.length <= MAX_TERM_LENGTH) terms[field].add(value.toLowerCase());
      addWords(value);
    }
    addWords(port.extrainfo);
    for (const cpe of port.cpes) {
      if (cpe.length <= MAX_TERM_LENGTH) terms.cpe.add(cpe.toLowerCase());
      addWords(cpe);
    }
    for (const script of port.scripts) {
      if (script.id.length <= MAX_TERM_LENGTH) terms.script.add(script.id.toLowerCase());
      addWords(script.id);
      addWords(script.output);
    }
  }
  const out = {} as Record<TermField, string[]>;
  for (const [field, values] of Object.entries(terms)) out[field as TermField] = [...values].sort();
  return { ports: [...ports].sort((a, b) => a - b), terms: out, words: [...words], screenshot: (scan.screenshots?.length ?? 0) > 0 };
}

/** Check the shape of a scan document before storing it and return it with a canonical ip. */
export function validateScan(scan: ScanDocument): ScanDocument {
  const fail = (field: string, expected: string): never => {
    throw new PortbanditError('PB_ERR_SCAN_DOCUMENT', `scan ${JSON.stringify(scan?.scanId)}: expected ${expected}`, {
      where: `scan.${field}`,
    });
  };
  if (typeof scan !== 'object' || scan === null) fail('', 'an object');
  if (typeof scan.scanId !== 'string' || scan.scanId === '') fail('scanId', 'a non-empty string');
  if (typeof scan.agentId !== 'string') fail('agentId', 'a string');
  if (!Array.isArray(scan.tags) || !scan.tags.every((tag) => typeof tag === 'string')) fail('tags', 'an array of strings');
  for (const field of ['startedAt', 'finishedAt', 'epoch', 'cycle'] as const) {
    if (!Number.isSafeInteger(scan[field])) fail(field, 'an integer');
  }
  if (!Array.isArray(scan.ports)) fail('ports', 'an array');
  scan.ports.forEach((port, i) => {
    if (!Number.isInteger(port?.port) || port.port < 0 || port.port > 65535) fail(`ports[${i}].port`, 'a port number 0-65535');
    if (typeof port.state !== 'string') fail(`ports[${i}].state`, 'a port state');
    if (!Array.isArray(port.cpes)) fail(`ports[${i}].cpes`, 'an array');
    if (!Array.isArray(port.scripts)) fail(`ports[${i}].scripts`, 'an array');
  });
  return { ...scan, ip: canonicalIp(scan.ip, 'scan.ip') };
}

/** Order of scans newest first: finishedAt desc, then scanId desc. Negative when a comes first. */
export function compareNewestFirst(a: { finishedAt: number; scanId: string }, b: { finishedAt: number; scanId: string }): number {
  if (a.finishedAt !== b.finishedAt) return b.finishedAt - a.finishedAt;
  return a.scanId < b.scanId ? 1 : a.scanId > b.scanId ? -1 : 0;
}
