export { importNmap, readNmapSightings, readScanFile, type ImportOptions } from './nmap-import.js';
export { importMasscan, readMasscanSightings } from './masscan-import.js';
export {
  observationsFromSightings,
  writeImportedRecording,
  type HostSighting,
  type EpochOptions,
  type ImportSummary,
} from './scan-observations.js';
