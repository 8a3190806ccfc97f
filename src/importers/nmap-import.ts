import { readFileSync } from 'node:fs';
import { parseNmapXml } from '../formats/index.js';
import { PortbanditError, isPortbanditError, PortRanges } from '../core/index.js';
import {
  type EpochOptions,
  type HostSighting,
  type ImportSummary,
  observationsFromSightings,
  writeImportedRecording,
} from './scan-observations.js';

export interface ImportOptions extends EpochOptions {
  readonly files: readonly string[];
  readonly out: string;
  readonly tags?: readonly string[];
  readonly name?: string;
  /** Overrides the files' own port specification. */
  readonly probed?: string;
}

/** Read one file or throw PB_ERR_IO naming it. */
export function readScanFile(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (cause) {
    throw new PortbanditError('PB_ERR_IO', `cannot read: ${(cause as Error).message}`, { where: file, cause });
  }
}

/** Throw one error listing every file that failed (all are checked before anything is written). */
export function throwCollected(errors: readonly Error[]): void {
  if (errors.length === 0) return;
  if (errors.length === 1) throw errors[0];
  throw new PortbanditError(
    'PB_ERR_SCANNER',
    `${errors.length} files could not be imported:\n  ${errors.map((e) => e.message).join('\n  ')}`,
    { cause: errors[0] },
  );
}

/** Sightings from nmap XML files; `probed` from each file's <scaninfo services> (or the override). */
export function readNmapSightings(files: readonly string[], probedOverride?: string): { sightings: HostSighting[]; hostsDown: number } {
  const sightings: HostSighting[] = [];
  const errors: Error[] = [];
  let hostsDown = 0;
  const override = probedOverride !== undefined ? PortRanges.parse(probedOverride, '--probed') : undefined;
  files.forEach((file, fileIndex) => {
    try {
      const run = parseNmapXml(readScanFile(file), file);
      if (!run.complete)
        throw new PortbanditError('PB_ERR_SCANNER', 'truncated nmap XML: no <runstats> (nmap was killed or the file is cut short)', {
          where: file,
        });
      const spec = override ?? (run.probed !== null ? PortRanges.parse(run.probed, `${file}: <scaninfo services>`) : undefined);
      if (!spec)
        throw new PortbanditError('PB_ERR_SCANNER', 'no TCP <scaninfo services> to take the probed ports from; pass --probed', {
          where: file,
        });
      for (const host of run.hosts) {
        if (host.status !== 'up') {
          hostsDown++;
          continue;
        }
        const open = host.ports.filter((p) => p.state === 'open');
        for (const p of open) {
          if (!spec.has(p.port))
            throw new PortbanditError(
              'PB_ERR_SCANNER',
              `${host.ip} port ${p.port} is open but outside the probed ports ${spec.toString()}`,
              { where: file },
            );
        }
        const services: Record<number, string> = {};
        for (const p of open) if (p.service) services[p.port] = p.service;
        sightings.push({
          ip: host.ip,
          open: open.map((p) => p.port),
          services,
          probed: spec,
          time: host.startedAt ?? run.startedAt,
          fileIndex,
        });
      }
    } catch (error) {
      if (!isPortbanditError(error)) throw error;
      errors.push(error);
    }
  });
  throwCollected(errors);
  return { sightings, hostsDown };
}

/** `portbandit import nmap`: nmap XML files (one per epoch, or bucketed by time) -> a scope recording. */
export async function importNmap(options: ImportOptions): Promise<ImportSummary> {
  const { sightings, hostsDown } = readNmapSightings(options.files, options.probed);
  const { probed, observations } = observationsFromSightings(sightings, options.tags ?? [], options);
  await writeImportedRecording(options.out, options.name ?? 'nmap import', probed, observations, {
    importer: 'nmap',
    files: options.files.length,
    epochBy: options.epochBy,
  });
  return summarize(options.files.length, observations, hostsDown);
}

export function summarize(
  files: number,
  observations: readonly { epoch: number; ip: string; open: readonly number[] }[],
  hostsDown: number,
): ImportSummary {
  return {
    files,
    observations: observations.length,
    epochs: observations.reduce((m, o) => Math.max(m, o.epoch + 1), 0),
    hosts: new Set(observations.map((o) => o.ip)).size,
    openPorts: observations.reduce((n, o) => n + o.open.length, 0),
    hostsDown,
  };
}
