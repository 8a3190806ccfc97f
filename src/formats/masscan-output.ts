import { formatIp, tryParseIp, PortbanditError } from '../core/index.js';

/** One open-port finding from masscan. */
export interface MasscanFinding {
  readonly ip: string;
  readonly port: number;
  /** Seconds since the epoch. */
  readonly timestamp: number;
  readonly ttl?: number;
}

export type MasscanFormat = 'json' | 'ndjson' | 'list';

function finding(ip: unknown, port: unknown, timestamp: unknown, ttl: unknown, where: string): MasscanFinding {
  const p = Number(port);
  const t = Number(timestamp);
  const address = tryParseIp(ip);
  if (address === undefined || !Number.isInteger(p) || p < 1 || p > 65535 || !Number.isFinite(t)) {
    throw new PortbanditError(
      'PB_ERR_SCANNER',
      `expected an ip (IPv4: four decimal octets without leading zeros), a port 1-65535 and a timestamp, got ip=${JSON.stringify(ip)} port=${JSON.stringify(port)} timestamp=${JSON.stringify(timestamp)}`,
      { where },
    );
  }
  return { ip: formatIp(address.family, address.value), port: p, timestamp: t, ...(typeof ttl === 'number' ? { ttl } : {}) };
}

/** Guess masscan's output format from its first meaningful character(s). */
export function detectMasscanFormat(text: string): MasscanFormat {
  const head = text.trimStart();
  if (head.startsWith('[')) return 'json';
  if (head.startsWith('{')) return 'ndjson';
  return 'list';
}

/**
 * Parse masscan output: `-oJ` (a JSON array, one record per line, as masscan writes it), `-oD`
 * (NDJSON) or `-oL` (list). Only `open` TCP records are findings; banner records and closed
 * ports are skipped. Errors name `source:line`. A `-oJ` file cut short (no closing `]`) is an error.
 */
export function parseMasscanOutput(
  text: string,
  source = 'masscan output',
  format: MasscanFormat = detectMasscanFormat(text),
): MasscanFinding[] {
  const out: MasscanFinding[] = [];
  const lines = text.split('\n');
  if (format === 'list') {
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i]!.trim();
      if (line === '' || line.startsWith('#')) continue;
      const f = line.split(/\s+/);
      if (f.length < 5 || !['open', 'closed', 'banner'].includes(f[0]!)) {
        throw new PortbanditError('PB_ERR_SCANNER', `expected "open tcp PORT IP TIMESTAMP", got ${JSON.stringify(line.slice(0, 80))}`, {
          where: `${source}:${i + 1}`,
        });
      }
      if (f[0] === 'open' && f[1] === 'tcp') out.push(finding(f[3], f[2], f[4], undefined, `${source}:${i + 1}`));
    }
    return out;
  }
  let sawOpen = false;
  let sawClose = false;
  for (let i = 0; i < lines.length; i++) {
    const where = `${source}:${i + 1}`;
    let line = lines[i]!.trim();
    if (format === 'json') {
      if (line === '[') {
        sawOpen = true;
        continue;
      }
      if (line === ']') {
        sawClose = true;
        continue;
      }
      if (line === ',' || line === '') continue;
      if (line.endsWith(',')) line = line.slice(0, -1);
    } else if (line === '') continue;
    let record: Record<string, unknown>;
    try {
      record = JSON.parse(line) as Record<string, unknown>;
    } catch {
      throw new PortbanditError('PB_ERR_SCANNER', `expected a JSON record, got ${JSON.stringify(line.slice(0, 80))}`, { where });
    }
    if (record === null || typeof record !== 'object') throw new PortbanditError('PB_ERR_SCANNER', 'expected a JSON object', { where });
    if (Array.isArray(record.ports)) {
      // -oJ: {"ip", "timestamp", "ports": [{"port", "proto", "status", "ttl"}]}
      for (const p of record.ports as Array<Record<string, unknown>>) {
        if (p?.proto === 'tcp' && p.status === 'open') out.push(finding(record.ip, p.port, record.timestamp, p.ttl, where));
      }
    } else if (record.rec_type !== undefined) {
      // -oD: {"ip", "timestamp", "port", "proto", "rec_type": "status", "data": {"status"}}
      const data = (record.data ?? {}) as Record<string, unknown>;
      if (record.rec_type === 'status' && record.proto === 'tcp' && data.status === 'open')
        out.push(finding(record.ip, record.port, record.timestamp, data.ttl, where));
    } else if (record.finished === undefined) {
      throw new PortbanditError('PB_ERR_SCANNER', 'expected a masscan record with "ports" or "rec_type"', { where });
    }
  }
  if (format === 'json' && (!sawOpen || !sawClose) && text.trim() !== '') {
    throw new PortbanditError('PB_ERR_SCANNER', `masscan -oJ output is cut short (missing "${sawOpen ? ']' : '['}")`, {
      where: `${source}:${lines.length}`,
    });
  }
  return out;
}

/** Open ports per address, ascending, without duplicates (masscan retries can repeat a finding). */
export function groupFindings(findings: readonly MasscanFinding[]): Map<string, number[]> {
  const sets = new Map<string, Set<number>>();
  for (const f of findings) {
    let s = sets.get(f.ip);
    if (!s) sets.set(f.ip, (s = new Set()));
    s.add(f.port);
  }
  return new Map([...sets].map(([ip, s]) => [ip, [...s].sort((a, b) => a - b)]));
}
