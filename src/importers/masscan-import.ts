import { parseMasscanOutput } from '../formats/index.js';
import { PortbanditError, isPortbanditError, PortRanges } from '../core/index.js';
import { type ImportOptions, readScanFile, summarize, throwCollected } from './nmap-import.js';
import { type HostSighting, type ImportSummary, observationsFromSightings, writeImportedRecording } from './scan-observations.js';

/** A `# probed: SPEC` comment line in an -oL file (our own convention; masscan writes none). */
const probedComment = /^#\s*probed:\s*(\S+)\s*$/m;

/**
 * Sightings from masscan -oJ/-oD/-oL files. masscan's output does not record the port
 * specification, so `probed` comes from --probed, or from a `# probed: SPEC` line in -oL files.
 */
export function readMasscanSightings(files: readonly string[], probedOverride?: string): HostSighting[] {
  const sightings: HostSighting[] = [];
  const errors: Error[] = [];
  const override = probedOverride !== undefined ? PortRanges.parse(probedOverride, '--probed') : undefined;
  files.forEach((file, fileIndex) => {
    try {
      const text = readScanFile(file);
      const header = probedComment.exec(text);
      const spec = override ?? (header ? PortRanges.parse(header[1]!, `${file}: # probed`) : undefined);
      if (!spec)
        throw new PortbanditError(
          'PB_ERR_FLAG_MISSING',
          'masscan output does not say which ports were probed; pass --probed (the -p of the scan)',
          { where: file },
        );
      const byIp = new Map<string, { open: Set<number>; time: number }>();
      for (const f of parseMasscanOutput(text, file)) {
        if (!spec.has(f.port))
          throw new PortbanditError('PB_ERR_SCANNER', `${f.ip} port ${f.port} is open but outside the probed ports ${spec.toString()}`, {
            where: file,
          });
        let h = byIp.get(f.ip);
        if (!h) byIp.set(f.ip, (h = { open: new Set(), time: f.timestamp }));
        h.open.add(f.port);
        h.time = Math.min(h.time, f.timestamp);
      }
      for (const [ip, h] of byIp) sightings.push({ ip, open: [...h.open], probed: spec, time: h.time, fileIndex });
    } catch (error) {
      if (!isPortbanditError(error)) throw error;
      errors.push(error);
    }
  });
  throwCollected(errors);
  return sightings;
}

/**
 * `portbandit import masscan`: masscan output -> a scope recording. masscan only reports open
 * ports, so hosts with nothing open do not appear (a recording line needs an address it saw).
 */
export async function importMasscan(options: ImportOptions): Promise<ImportSummary> {
  const sightings = readMasscanSightings(options.files, options.probed);
  const { probed, observations } = observationsFromSightings(sightings, options.tags ?? [], options);
  await writeImportedRecording(options.out, options.name ?? 'masscan import', probed, observations, {
    importer: 'masscan',
    files: options.files.length,
    epochBy: options.epochBy,
  });
  return summarize(options.files.length, observations, 0);
}
