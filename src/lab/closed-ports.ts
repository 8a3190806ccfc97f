import { execa } from 'execa';
import { PortbanditError } from '../core/index.js';
import type { LabService } from './services.js';

/**
 * What a lab host does with a TCP SYN to a port it does not serve:
 * - `reject`: the kernel's answer, a RST ("closed") — an unfiltered host, nmap's best case;
 * - `drop`: nothing at all ("filtered"), as behind the host firewalls most real scopes have.
 *   An nftables table in the host's own namespace drops TCP to every unserved port, so the
 *   rule disappears with the namespace.
 */
export type LabClosedPolicy = 'reject' | 'drop';

export const LAB_CLOSED_POLICIES: readonly LabClosedPolicy[] = ['reject', 'drop'];

/** The nftables table the lab puts in each host namespace (drop mode only). */
export const LAB_NFT_TABLE = 'pb_lab';

/** Parse a `--closed` value; throws PB_ERR_FLAG_VALUE naming the flag otherwise. */
export function parseClosedPolicy(value: string, where = '--closed'): LabClosedPolicy {
  if ((LAB_CLOSED_POLICIES as readonly string[]).includes(value)) return value as LabClosedPolicy;
  throw new PortbanditError('PB_ERR_FLAG_VALUE', `expected one of ${LAB_CLOSED_POLICIES.join(', ')}, got ${JSON.stringify(value)}`, {
    where,
  });
}

/**
 * The nft script that (re)defines the host's table in one transaction: the dummy `table` line
 * makes the `delete` valid when no table exists yet, so an epoch's change never has a window
 * where every port answers or none does.
 */
export function closedPortsRuleset(services: readonly LabService[]): string {
  const served = [...new Set(services.map((s) => s.port))].sort((a, b) => a - b);
  const set =
    served.length > 0
      ? `    set served { type inet_service; elements = { ${served.join(', ')} } }\n`
      : '    set served { type inet_service; }\n';
  return [
    `table inet ${LAB_NFT_TABLE} {}`,
    `delete table inet ${LAB_NFT_TABLE}`,
    `table inet ${LAB_NFT_TABLE} {`,
    set.trimEnd(),
    '    chain input {',
    '        type filter hook input priority filter; policy accept;',
    // Only what arrives over the lab link: loopback inside the namespace stays untouched.
    '        iifname "eth0" tcp dport != @served drop',
    '    }',
    '}',
    '',
  ].join('\n');
}

/** Whether `nft` can run (drop mode needs it: apt-get install nftables). */
export async function nftUnavailableReason(): Promise<string | null> {
  try {
    await execa('nft', ['--version'], { timeout: 5000 });
    return null;
  } catch {
    return "the lab's --closed drop needs nftables (apt-get install nftables)";
  }
}

/** Run an nft script in host namespace `ns` (one transaction); PB_ERR_LAB naming the namespace when it fails. */
async function nftIn(ns: string, script: string): Promise<void> {
  try {
    await execa('ip', ['netns', 'exec', ns, 'nft', '-f', '-'], { input: script, timeout: 10_000 });
  } catch (cause) {
    throw new PortbanditError('PB_ERR_LAB', `nft in ${ns} failed: ${(cause as { stderr?: string }).stderr ?? String(cause)}`, {
      where: ns,
      cause,
    });
  }
}

/** Make host namespace `ns` drop TCP to every port not in `services` (replaces its previous rule). */
export async function applyClosedPolicy(ns: string, policy: LabClosedPolicy, services: readonly LabService[]): Promise<void> {
  if (policy === 'reject') return;
  await nftIn(ns, closedPortsRuleset(services));
}

/** The nftables table that hides a lab host from masscan (`labHideFromMasscan`). */
export const LAB_SCANNER_FILTER_TABLE = 'pb_lab_scanner_filter';

/**
 * The nft script that makes a host drop SYNs without a TCP timestamp option, as firewalls that
 * single out scanners do: masscan's SYNs carry no options, a kernel connect's carry several. The
 * host then shows masscan nothing while nmap's connect scan and the agent's connect sweep reach
 * it (agent/masscan-blind.ts). `hidden` false removes the table.
 */
export function scannerFilterRuleset(hidden: boolean): string {
  return [
    `table inet ${LAB_SCANNER_FILTER_TABLE} {}`,
    `delete table inet ${LAB_SCANNER_FILTER_TABLE}`,
    ...(hidden
      ? [
          `table inet ${LAB_SCANNER_FILTER_TABLE} {`,
          '    chain input {',
          '        type filter hook input priority filter - 10; policy accept;',
          '        iifname "eth0" tcp flags & (syn | ack) == syn tcp option timestamp missing drop',
          '    }',
          '}',
        ]
      : []),
    '',
  ].join('\n');
}

/** Hide lab host namespace `ns` from masscan (`hidden`), or show it again; needs nftables. */
export async function labHideFromMasscan(ns: string, hidden: boolean): Promise<void> {
  await nftIn(ns, scannerFilterRuleset(hidden));
}
