import { PortbanditError, isPort } from '../core/index.js';
import type { PortCatalog } from './nmap-services.js';

/** One line of a Natlas services file: `name<TAB>port/proto`. */
export interface ServiceEntry {
  name: string;
  port: number;
  proto: 'tcp' | 'udp';
}

/**
 * Parse a Natlas `natlas-services` file (`name<TAB>port/proto` per line, `#` comments).
 * Returns entries in file order; `source` names the file in errors.
 */
export function parseServicesFile(text: string, source: string): ServiceEntry[] {
  const out: ServiceEntry[] = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.replace(/#.*/, '').trim();
    if (line === '') continue;
    const m = /^(\S+)\s+(\d+)\/(tcp|udp)$/i.exec(line);
    const port = m ? Number(m[2]) : NaN;
    if (!m || !isPort(port)) {
      throw new PortbanditError(
        'PB_ERR_SERVICES_FILE',
        `expected "name<TAB>port/proto" with a port 1-65535, got ${JSON.stringify(lines[i]!.slice(0, 80))}`,
        {
          where: `${source}:${i + 1}`,
        },
      );
    }
    out.push({ name: m[1]!, port, proto: m[3]!.toLowerCase() as 'tcp' | 'udp' });
  }
  return out;
}

/** Write entries in the Natlas services format. */
export function formatServicesFile(entries: readonly ServiceEntry[]): string {
  return entries.map((e) => `${e.name}\t${e.port}/${e.proto}\n`).join('');
}

/** TCP ports of a services list, in file order, without duplicates. */
export function tcpPorts(entries: readonly ServiceEntry[]): number[] {
  const seen = new Set<number>();
  for (const e of entries) if (e.proto === 'tcp') seen.add(e.port);
  return [...seen];
}

/** The default fixed list: nmap's top `n` (1,000) TCP ports by open frequency, as service entries. */
export function defaultServices(catalog: PortCatalog, n = 1000): ServiceEntry[] {
  return catalog.top(n).map((port) => ({ name: catalog.name(port) ?? 'unknown', port, proto: 'tcp' as const }));
}
