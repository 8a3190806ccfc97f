import type { PortRanges } from '../core/index.js';

/**
 * The scope recording: NDJSON, a header line then one observation per host per epoch.
 * Documented in docs/recording-format.md with a JSON Schema (docs/recording.schema.json).
 */
export const RECORDING_FORMAT = 'portbandit.recording';
export const RECORDING_VERSION = 1;

export interface RecordingHeader {
  readonly format: typeof RECORDING_FORMAT;
  readonly version: typeof RECORDING_VERSION;
  readonly name: string;
  /** Ports probed on every host unless a line overrides it: "1-65535", "22,80,443", or a list. */
  readonly probed: string | readonly (number | string)[];
  /** Optional: where the recording came from (generator profile and seed, importer, store). */
  readonly source?: Readonly<Record<string, unknown>>;
  /** Optional free-form description. */
  readonly description?: string;
}

/** One line after the header: what was open on one host in one epoch. */
export interface Observation {
  readonly epoch: number;
  readonly ip: string;
  readonly tags: readonly string[];
  /** Open TCP ports, ascending, without duplicates, all inside the line's `probed`. */
  readonly open: readonly number[];
  /** Overrides the header's `probed` for this line. */
  readonly probed?: string | readonly (number | string)[];
  /** Optional service names by port (as strings, JSON keys): {"22": "ssh"}. */
  readonly services?: Readonly<Record<string, string>>;
}

/**
 * A recording held in memory compactly: columns of typed arrays, observations sorted by epoch
 * (stable: file order within an epoch), open ports in one Uint16Array indexed by offsets.
 * Built by `loadRecording` (src/recording/reader.ts).
 */
export interface LoadedRecording {
  readonly header: RecordingHeader;
  /** The header's `probed`, parsed. */
  readonly probed: PortRanges;
  /** Number of observation lines. */
  readonly size: number;
  /** Highest epoch + 1 (epochs with no observation are allowed and empty). */
  readonly epochs: number;
  /** Distinct hosts, by first appearance; `hostIp[h]` is host h's address. */
  readonly hostIp: readonly string[];
  /** Observation i's epoch, host index, tag-set index and probed-set index. */
  readonly obsEpoch: Uint32Array;
  readonly obsHost: Uint32Array;
  readonly obsTagSet: Uint32Array;
  readonly obsProbed: Uint32Array;
  /** Observation i's open ports are openPorts[openStart[i] .. openStart[i + 1]), ascending. */
  readonly openStart: Uint32Array;
  readonly openPorts: Uint16Array;
  /** Interned tag sets; index 0 is always the empty set. */
  readonly tagSets: readonly (readonly string[])[];
  /** Interned probed sets; index 0 is always the header's `probed`. */
  readonly probedSets: readonly PortRanges[];
  /** Observations of epoch e are [epochStart[e], epochStart[e + 1]). Length epochs + 1. */
  readonly epochStart: Uint32Array;
  /** Service names, sparse: observation index -> port -> name. */
  readonly services: ReadonlyMap<number, ReadonlyMap<number, string>>;
}
