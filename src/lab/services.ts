/** What a lab host runs on a port: enough of a real protocol for nmap -sV to name it. */
export type LabServiceKind = 'http' | 'ssh' | 'smtp' | 'ftp' | 'redis' | 'silent';

export interface LabService {
  readonly port: number;
  readonly kind: LabServiceKind;
}

const byPort: Record<number, LabServiceKind> = {
  21: 'ftp',
  22: 'ssh',
  2222: 'ssh',
  25: 'smtp',
  587: 'smtp',
  465: 'smtp',
  6379: 'redis',
  80: 'http',
  81: 'http',
  443: 'http',
  3000: 'http',
  5000: 'http',
  8000: 'http',
  8008: 'http',
  8080: 'http',
  8081: 'http',
  8443: 'http',
  8888: 'http',
  9000: 'http',
  9200: 'http',
  10250: 'http',
};

/** The protocol a lab host speaks on `port`: well-known ports get theirs, odd high ports HTTP apps. */
export function labServiceKind(port: number): LabServiceKind {
  const known = byPort[port];
  if (known) return known;
  // An organisation's own apps on odd high ports are mostly web apps; keep some silent.
  return port >= 10000 && port % 3 !== 0 ? 'http' : 'silent';
}

/** The nmap service name a lab service should be identified as (for end-to-end checks). */
export function expectedNmapService(kind: LabServiceKind): string | undefined {
  switch (kind) {
    case 'http':
      return 'http';
    case 'ssh':
      return 'ssh';
    case 'smtp':
      return 'smtp';
    case 'ftp':
      return 'ftp';
    case 'redis':
      return 'redis';
    case 'silent':
      return undefined;
  }
}
