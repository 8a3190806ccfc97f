import { readFileSync } from 'node:fs';
import { execa } from 'execa';

/** What this machine can run: the scanners installed and whether raw sockets are allowed. */
export interface ScannerTools {
  readonly nmap: string | null;
  readonly masscan: string | null;
  /** root or CAP_NET_RAW: masscan (and nmap -sS) need it. */
  readonly rawSockets: boolean;
}

const CAP_NET_RAW = 13n;

/** Whether this process may open raw sockets (uid 0, or CAP_NET_RAW in its effective set). */
export function hasRawSockets(): boolean {
  if (process.getuid?.() === 0) return true;
  try {
    const line = readFileSync('/proc/self/status', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('CapEff:'));
    return line ? ((BigInt(`0x${line.split(/\s+/)[1]}`) >> CAP_NET_RAW) & 1n) === 1n : false;
  } catch {
    return false;
  }
}

async function versionOf(file: string, args: readonly string[]): Promise<string | null> {
  const r = await execa(file, args, { reject: false, timeout: 10_000, stdin: 'ignore' });
  return r.exitCode === 0 || /version/i.test(String(r.stdout)) ? file : null;
}

/** Find nmap and masscan on PATH (or at the given paths). */
export async function detectScannerTools(paths: { nmap?: string; masscan?: string } = {}): Promise<ScannerTools> {
  const [nmap, masscan] = await Promise.all([
    versionOf(paths.nmap ?? 'nmap', ['--version']),
    versionOf(paths.masscan ?? 'masscan', ['--version']),
  ]);
  return { nmap, masscan, rawSockets: hasRawSockets() };
}

/** Human-readable lines about what is missing and what still works without it (for stderr). */
export function describeMissingTools(tools: ScannerTools): string[] {
  const lines: string[] = [];
  if (!tools.nmap) {
    lines.push(
      'nmap is not installed (apt-get install nmap masscan): the agent still finds open ports with its preflight, ' +
        'but reports them without service names, products or script output.',
    );
  }
  if (!tools.masscan)
    lines.push(
      'masscan is not installed (apt-get install nmap masscan): the preflight uses the built-in TCP connect sweep instead (slower on many ports).',
    );
  else if (!tools.rawSockets) lines.push('masscan needs root or CAP_NET_RAW: the preflight uses the built-in TCP connect sweep instead.');
  return lines;
}
