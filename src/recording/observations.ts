import type { LoadedRecording, Observation } from './types.js';

/**
 * Observation i of a loaded recording (sorted order) as a plain object: tags shared with the
 * interned set, open ports copied, `probed` present only when the line overrode the header
 * (as its canonical spec string), `services` only when the line had any.
 */
export function observationAt(rec: LoadedRecording, i: number): Observation {
  if (!Number.isInteger(i) || i < 0 || i >= rec.size) throw new RangeError(`observation index ${i} is outside 0..${rec.size - 1}`);
  const open = Array.from(rec.openPorts.subarray(rec.openStart[i]!, rec.openStart[i + 1]!));
  const obs: { -readonly [K in keyof Observation]: Observation[K] } = {
    epoch: rec.obsEpoch[i]!,
    ip: rec.hostIp[rec.obsHost[i]!]!,
    tags: rec.tagSets[rec.obsTagSet[i]!]!,
    open,
  };
  const probed = rec.obsProbed[i]!;
  if (probed !== 0) obs.probed = rec.probedSets[probed]!.toString();
  const names = rec.services.get(i);
  if (names !== undefined && names.size > 0) {
    const services: Record<string, string> = {};
    for (const port of [...names.keys()].sort((a, b) => a - b)) services[String(port)] = names.get(port)!;
    obs.services = services;
  }
  return obs;
}

/** Every observation of a loaded recording, in sorted order (by epoch, file order within an epoch). */
export function* observations(rec: LoadedRecording): Generator<Observation> {
  for (let i = 0; i < rec.size; i++) yield observationAt(rec, i);
}

/** The open ports of observation i as a view into the recording (no copy; do not modify). */
export function openPortsAt(rec: LoadedRecording, i: number): Uint16Array {
  return rec.openPorts.subarray(rec.openStart[i]!, rec.openStart[i + 1]!);
}
