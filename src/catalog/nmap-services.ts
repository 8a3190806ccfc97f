import { existsSync, readFileSync } from 'node:fs';
import { CumulativeSampler, PortbanditError, MAX_PORT } from '../core/index.js';

/** Where nmap's open-frequency table is looked for, in order, after $PORTBANDIT_NMAP_SERVICES. */
export const NMAP_SERVICES_PATHS = [
  '/usr/share/nmap/nmap-services',
  '/usr/local/share/nmap/nmap-services',
  '/opt/homebrew/share/nmap/nmap-services',
  '/opt/local/share/nmap/nmap-services',
] as const;

/**
 * nmap's TCP port catalog: names and open frequencies from `nmap-services`.
 * Frequencies are what nmap measured (fraction of scanned hosts with the port open).
 */
export class PortCatalog {
  /** Open frequency per port, 0 for ports nmap has no figure for. Index = port. */
  readonly frequencies: Float64Array;
  /** Ports with a nonzero frequency, most frequent first (ties by lower port). */
  readonly byFrequency: Uint16Array;
  private readonly names: Map<number, string>;
  private readonly ranks: Int32Array;
  /** Sum of all TCP frequencies, to turn frequencies into shares. */
  readonly totalFrequency: number;
  readonly source: string;
  private sampler: CumulativeSampler | undefined;

  constructor(entries: Iterable<{ port: number; name: string; frequency: number }>, source: string) {
    this.frequencies = new Float64Array(MAX_PORT + 1);
    this.names = new Map();
    const listed: number[] = [];
    let total = 0;
    for (const { port, name, frequency } of entries) {
      if (!this.names.has(port)) this.names.set(port, name);
      if (frequency > this.frequencies[port]!) {
        if (this.frequencies[port] === 0) listed.push(port);
        total += frequency - this.frequencies[port]!;
        this.frequencies[port] = frequency;
      }
    }
    listed.sort((a, b) => this.frequencies[b]! - this.frequencies[a]! || a - b);
    this.byFrequency = Uint16Array.from(listed);
    this.ranks = new Int32Array(MAX_PORT + 1).fill(-1);
    listed.forEach((p, i) => (this.ranks[p] = i));
    this.totalFrequency = total;
    this.source = source;
  }

  /** nmap's open frequency for a TCP port (0 when unknown). */
  frequency(port: number): number {
    return this.frequencies[port] ?? 0;
  }

  /** 0-based rank by frequency, or -1 when nmap has no frequency for the port. */
  rank(port: number): number {
    return this.ranks[port] ?? -1;
  }

  /** nmap's service name for a TCP port. */
  name(port: number): string | undefined {
    return this.names.get(port);
  }

  /** The n most frequent TCP ports, most frequent first (nmap's --top-ports n). */
  top(n: number): number[] {
    return Array.from(this.byFrequency.subarray(0, Math.max(0, n)));
  }

  /**
   * Draws ports in proportion to their open frequency (built on first use): the one sampler of
   * "ordinary" services, shared by the synthetic generator and the strategies' exploration prior.
   */
  get frequencySampler(): CumulativeSampler {
    return (this.sampler ??= new CumulativeSampler(this.byFrequency, (p) => this.frequency(p)));
  }

  /** Share of the total open-frequency mass held by the n most frequent ports. */
  topShare(n: number): number {
    let s = 0;
    const k = Math.min(n, this.byFrequency.length);
    for (let i = 0; i < k; i++) s += this.frequencies[this.byFrequency[i]!]!;
    return s / this.totalFrequency;
  }
}

/** Parse the text of an nmap-services file; TCP lines only. `source` names the file in errors. */
export function parseNmapServices(text: string, source: string): PortCatalog {
  const entries: Array<{ port: number; name: string; frequency: number }> = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.replace(/#.*/, '').trim();
    if (line === '') continue;
    const fields = line.split(/\s+/);
    const m = /^(\d+)\/(tcp|udp|sctp)$/.exec(fields[1] ?? '');
    const frequency = fields[2] === undefined ? 0 : Number(fields[2]);
    if (!m || !Number.isFinite(frequency) || frequency < 0 || frequency > 1) {
      throw new PortbanditError(
        'PB_ERR_NMAP_SERVICES',
        `expected "name<TAB>port/proto<TAB>frequency", got ${JSON.stringify(lines[i]!.slice(0, 80))}`,
        {
          where: `${source}:${i + 1}`,
        },
      );
    }
    if (m[2] !== 'tcp') continue;
    const port = Number(m[1]);
    if (port < 1 || port > MAX_PORT) continue;
    entries.push({ port, name: fields[0]!, frequency });
  }
  if (entries.length === 0) throw new PortbanditError('PB_ERR_NMAP_SERVICES', 'no TCP entries found', { where: source });
  return new PortCatalog(entries, source);
}

let cached: PortCatalog | undefined;

/**
 * Load the installed nmap's nmap-services table ($PORTBANDIT_NMAP_SERVICES first, then the
 * standard paths). Throws PB_ERR_NMAP_SERVICES naming every path tried when none exists.
 */
export function loadNmapServices(options: { path?: string; env?: NodeJS.ProcessEnv } = {}): PortCatalog {
  const env = options.env ?? process.env;
  if (!options.path && !env.PORTBANDIT_NMAP_SERVICES && cached) return cached;
  const candidates = options.path
    ? [options.path]
    : env.PORTBANDIT_NMAP_SERVICES
      ? [env.PORTBANDIT_NMAP_SERVICES]
      : [...NMAP_SERVICES_PATHS];
  for (const path of candidates) {
    if (!existsSync(path)) continue;
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (cause) {
      throw new PortbanditError('PB_ERR_NMAP_SERVICES', `cannot read nmap-services`, { where: path, cause });
    }
    const catalog = parseNmapServices(text, path);
    if (!options.path && !env.PORTBANDIT_NMAP_SERVICES) cached = catalog;
    return catalog;
  }
  throw new PortbanditError(
    'PB_ERR_NMAP_SERVICES',
    `nmap's nmap-services table was not found; tried ${candidates.join(', ')}. Install nmap (apt-get install nmap) or set PORTBANDIT_NMAP_SERVICES to the file.`,
  );
}
