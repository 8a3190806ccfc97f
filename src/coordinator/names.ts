import { readFileSync } from 'node:fs';
import { promises as dns } from 'node:dns';
import { PortbanditError } from '../core/index.js';
import { formatAddress, parseAddress } from './address.js';

/**
 * Scope entries by DNS name (docs/coordinator.md, "Targets by name"): a name is resolved each
 * cycle and every A/AAAA address it has becomes a target with the entry's tags, subject to the
 * blocklist like any other address. Names resolve to whatever the resolver says, so the
 * blocklist is the operator's guard.
 */

/** Resolves one name to its addresses (A and AAAA), canonical text. Empty: the name has none. */
export interface NameResolver {
  /** What it is, for logs (`system DNS`, `hosts file /etc/hosts`, `DNS 127.0.0.1:5353`). */
  readonly description: string;
  resolve(name: string): Promise<string[]>;
}

const LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/u;

/**
 * A DNS name as a scope entry: lower case, no trailing dot, at most 253 characters, two labels
 * or more of letters, digits and inner hyphens, the last one starting with a letter (so a
 * mistyped address is never taken for a name). Undefined when `text` is not one.
 */
export function asDnsName(text: string): string | undefined {
  const name = text.toLowerCase().replace(/\.$/u, '');
  if (name.length === 0 || name.length > 253) return undefined;
  const labels = name.split('.');
  if (labels.length < 2 || !labels.every((l) => LABEL.test(l))) return undefined;
  return /^[a-z]/u.test(labels[labels.length - 1]!) ? name : undefined;
}

/** True when a resolved address may be a target: a valid unicast address (not unspecified, broadcast or multicast). */
export function isTargetAddress(ip: string): boolean {
  let parsed;
  try {
    parsed = parseAddress(ip);
  } catch {
    return false;
  }
  if (parsed.family === 4) return parsed.value !== 0n && parsed.value !== 0xffffffffn && parsed.value >> 28n !== 0xen;
  return parsed.value !== 0n && parsed.value >> 120n !== 0xffn;
}

/** An /etc/hosts-style file (`address name [alias...]`, `#` comments), read again at each resolution. */
export function hostsFileResolver(file: string): NameResolver {
  const load = (): Map<string, string[]> => {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (cause) {
      throw new PortbanditError('PB_ERR_CONFIG', `cannot read the hosts file: ${(cause as Error).message}`, { where: file, cause });
    }
    const byName = new Map<string, string[]>();
    text.split('\n').forEach((raw, i) => {
      const line = raw.replace(/#.*/u, '').trim();
      if (line === '') return;
      const [address, ...names] = line.split(/\s+/u);
      let canonical: string;
      try {
        canonical = canonicalText(address!);
      } catch {
        throw new PortbanditError('PB_ERR_CONFIG', `expected "address name [alias...]", got ${JSON.stringify(raw.trim())}`, {
          where: `${file}:${i + 1}`,
        });
      }
      if (names.length === 0) throw new PortbanditError('PB_ERR_CONFIG', `expected a name after ${address}`, { where: `${file}:${i + 1}` });
      for (const n of names) {
        const key = n.toLowerCase().replace(/\.$/u, '');
        const list = byName.get(key) ?? [];
        if (!list.includes(canonical)) list.push(canonical);
        byName.set(key, list);
      }
    });
    return byName;
  };
  load(); // a bad file fails at startup, naming the line
  return { description: `hosts file ${file}`, resolve: async (name) => [...(load().get(name) ?? [])] };
}

/** DNS over node's resolver: the system's servers, or `servers` (e.g. `127.0.0.1:5353`). */
export function dnsResolver(servers?: readonly string[]): NameResolver {
  const resolver = new dns.Resolver({ timeout: 3000, tries: 2 });
  if (servers) {
    try {
      resolver.setServers([...servers]);
    } catch (cause) {
      throw new PortbanditError(
        'PB_ERR_CONFIG',
        `expected DNS servers as address or address:port, got ${JSON.stringify(servers.join(','))}`,
        { where: 'resolver', cause },
      );
    }
  }
  const family = async (query: () => Promise<string[]>): Promise<string[]> => {
    try {
      return await query();
    } catch (error) {
      // The name or this record type does not exist: no addresses, not a failure.
      const code = (error as { code?: string }).code;
      if (code === dns.NODATA || code === dns.NOTFOUND) return [];
      throw error;
    }
  };
  return {
    description: servers ? `DNS ${servers.join(', ')}` : 'system DNS',
    resolve: async (name) => {
      const [v4, v6] = await Promise.all([family(() => resolver.resolve4(name)), family(() => resolver.resolve6(name))]);
      return [...v4, ...v6];
    },
  };
}

/**
 * The resolver a configuration names: `` or `system` (the system's DNS servers), `hosts:FILE`
 * (an /etc/hosts-style file) or `dns:ADDRESS:PORT` (a DNS server, e.g. `dns:127.0.0.1:5353`).
 */
export function createResolver(spec: string): NameResolver {
  if (spec === '' || spec === 'system') return dnsResolver();
  if (spec.startsWith('hosts:') && spec.length > 6) return hostsFileResolver(spec.slice(6));
  if (spec.startsWith('dns:') && spec.length > 4) return dnsResolver(spec.slice(4).split(','));
  throw new PortbanditError('PB_ERR_CONFIG', `expected system, hosts:FILE or dns:ADDRESS:PORT, got ${JSON.stringify(spec)}`, {
    where: 'resolver',
  });
}

/** The store's canonical text of an address (throws on anything else). */
function canonicalText(ip: string): string {
  const { family, value } = parseAddress(ip);
  return formatAddress(family, value);
}

/** One name entry of the scope. */
export interface NameEntry {
  readonly name: string;
  readonly tags: readonly string[];
}

/** The addresses of every name entry, as found by the last resolution. */
export interface NameResolution {
  /** Name -> its target addresses (valid unicast only). */
  readonly addresses: ReadonlyMap<string, readonly string[]>;
  /** Address -> the names that resolved to it, sorted. */
  readonly namesByIp: ReadonlyMap<string, readonly string[]>;
}

/**
 * Resolve every name entry. A name whose lookup fails (time-out, server failure) keeps the
 * addresses of `previous`; a name without addresses has none. Addresses that are not valid
 * unicast targets are dropped (and reported).
 */
export async function resolveNameEntries(
  entries: readonly NameEntry[],
  resolver: NameResolver,
  previous: NameResolution | undefined,
  report: (name: string, problem: string) => void,
): Promise<NameResolution> {
  const names = [...new Set(entries.map((e) => e.name))].sort();
  const found = await Promise.all(
    names.map(async (name) => {
      try {
        const raw = await resolver.resolve(name);
        const ok = [...new Set(raw.filter(isTargetAddress).map(canonicalText))].sort();
        const bad = raw.filter((ip) => !isTargetAddress(ip));
        if (bad.length > 0) report(name, `not a target address: ${bad.join(', ')}`);
        return [name, ok] as const;
      } catch (error) {
        report(name, `lookup failed (${(error as Error).message}); keeping its previous addresses`);
        return [name, previous?.addresses.get(name) ?? []] as const;
      }
    }),
  );
  const addresses = new Map<string, readonly string[]>(found);
  const namesByIp = new Map<string, string[]>();
  for (const [name, ips] of found) for (const ip of ips) namesByIp.set(ip, [...(namesByIp.get(ip) ?? []), name].sort());
  return { addresses, namesByIp };
}
