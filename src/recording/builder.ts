import { PortbanditError, type PortRanges } from '../core/index.js';
import type { LoadedRecording, Observation, RecordingHeader } from './types.js';
import { parseProbed, validateHeader, validateObservation, type ValidObservation } from './validate.js';

const INITIAL_CAPACITY = 1024;

function grow32(array: Uint32Array, needed: number): Uint32Array {
  if (needed <= array.length) return array;
  let capacity = Math.max(array.length, INITIAL_CAPACITY);
  while (capacity < needed) capacity *= 2;
  const next = new Uint32Array(capacity);
  next.set(array);
  return next;
}

function grow16(array: Uint16Array, needed: number): Uint16Array {
  if (needed <= array.length) return array;
  let capacity = Math.max(array.length, INITIAL_CAPACITY);
  while (capacity < needed) capacity *= 2;
  const next = new Uint16Array(capacity);
  next.set(array);
  return next;
}

/** Where a builder's lines come from, for error messages: `source:line`. */
export interface RecordingBuilderOptions {
  /** File name (or a label such as "<memory>") used in `file:line` error positions. */
  readonly source?: string;
  /** Line number of the header (default 1); used when the header itself is invalid. */
  readonly headerLine?: number;
}

/**
 * Incrementally builds the compact `LoadedRecording`: one validated observation at a time into
 * geometrically grown typed-array columns, with hosts, tag sets and probed sets interned. `build()`
 * sorts by epoch (stably, so file order within an epoch) and checks duplicate (epoch, ip) pairs.
 * Every input is validated, so a builder fed by a generator and one fed by a file agree exactly.
 */
export class RecordingBuilder {
  readonly header: RecordingHeader;
  readonly probed: PortRanges;
  readonly source: string;

  private size = 0;
  private maxEpoch = -1;
  private obsEpoch: Uint32Array = new Uint32Array(INITIAL_CAPACITY);
  private obsHost: Uint32Array = new Uint32Array(INITIAL_CAPACITY);
  private obsTagSet: Uint32Array = new Uint32Array(INITIAL_CAPACITY);
  private obsProbed: Uint32Array = new Uint32Array(INITIAL_CAPACITY);
  private obsLine: Uint32Array = new Uint32Array(INITIAL_CAPACITY);
  private openStart: Uint32Array = new Uint32Array(INITIAL_CAPACITY + 1);
  private openPorts: Uint16Array = new Uint16Array(INITIAL_CAPACITY * 4);
  private openCount = 0;
  private sortedByEpoch = true;

  private readonly hostIndex = new Map<string, number>();
  private readonly hostIp: string[] = [];
  /** Per host, the highest epoch seen + 1 (0 = none): catches duplicates at once in epoch-ordered input. */
  private hostLastEpoch: Uint32Array = new Uint32Array(INITIAL_CAPACITY);
  /** The host index the next line most likely has (see `append`). */
  private predictedHost = 0;
  /** Some host went back to an earlier epoch: duplicates must also be checked in `build()`. */
  private needsDuplicateScan = false;

  private readonly tagSetIndex = new Map<string, number>();
  private readonly tagSets: (readonly string[])[] = [Object.freeze([])];
  private readonly probedByRaw = new Map<string, number>();
  private readonly probedByCanonical = new Map<string, number>();
  private readonly probedSets: PortRanges[];
  private readonly services = new Map<number, ReadonlyMap<number, string>>();
  private nextLine: number;
  private built = false;

  /** Start a recording from a header value (validated here: throws PB_ERR_RECORDING naming `source:headerLine`). */
  constructor(header: unknown, options: RecordingBuilderOptions = {}) {
    this.source = options.source ?? '<memory>';
    const headerLine = options.headerLine ?? 1;
    const valid = validateHeader(header, `${this.source}:${headerLine}`);
    this.header = valid.header;
    this.probed = valid.probed;
    this.probedSets = [valid.probed];
    this.probedByRaw.set(rawProbedKey(valid.header.probed), 0);
    this.probedByCanonical.set(valid.probed.toString(), 0);
    this.nextLine = headerLine + 1;
  }

  /** Number of observations added so far. */
  get count(): number {
    return this.size;
  }

  /**
   * Validate and append one observation line. `line` is its line number for error messages
   * (default: the line after the previous one).
   */
  add(value: unknown, line: number = this.nextLine): void {
    if (this.built) throw new Error('RecordingBuilder.add() after build()');
    const where = `${this.source}:${line}`;
    const obs = validateObservation(value, where, this.probed, this.resolveProbed);
    this.append(obs, line, where);
    this.nextLine = line + 1;
  }

  private readonly resolveProbed = (spec: unknown, where: string): PortRanges => {
    // Interned by the spec as written, so a repeated override is parsed once per recording.
    const raw = typeof spec === 'string' ? spec : Array.isArray(spec) ? rawProbedKey(spec as (number | string)[]) : undefined;
    const known = raw === undefined ? undefined : this.probedByRaw.get(raw);
    return known !== undefined ? this.probedSets[known]! : parseProbed(spec, where);
  };

  private internProbed(obs: ValidObservation): number {
    if (obs.probedSpec === undefined) return 0;
    const raw = rawProbedKey(obs.probedSpec);
    const known = this.probedByRaw.get(raw);
    if (known !== undefined) return known;
    const canonical = obs.probedSet.toString();
    let index = this.probedByCanonical.get(canonical);
    if (index === undefined) {
      index = this.probedSets.length;
      this.probedSets.push(obs.probedSet);
      this.probedByCanonical.set(canonical, index);
    }
    this.probedByRaw.set(raw, index);
    return index;
  }

  private internTags(tags: readonly string[]): number {
    if (tags.length === 0) return 0;
    // One-tag keys start with \u0001 and list keys with '[', so the two never collide.
    const lookup = tags.length === 1 ? `\u0001${tags[0]!}` : JSON.stringify(tags);
    let index = this.tagSetIndex.get(lookup);
    if (index === undefined) {
      index = this.tagSets.length;
      this.tagSets.push(Object.freeze([...tags]));
      this.tagSetIndex.set(lookup, index);
    }
    return index;
  }

  private append(obs: ValidObservation, line: number, where: string): void {
    const i = this.size;
    // Recordings list hosts in the same order every epoch: guess the host after the previous
    // line's and confirm with one string compare, which is cheaper than hashing into the map.
    let host: number | undefined = this.hostIp[this.predictedHost] === obs.ip ? this.predictedHost : this.hostIndex.get(obs.ip);
    if (host === undefined) {
      host = this.hostIp.length;
      this.hostIp.push(obs.ip);
      this.hostIndex.set(obs.ip, host);
      this.hostLastEpoch = grow32(this.hostLastEpoch, host + 1);
    }
    const last = this.hostLastEpoch[host]!;
    if (last === obs.epoch + 1) {
      throw new PortbanditError(
        'PB_ERR_RECORDING',
        `duplicate observation: host ${obs.ip} already has an observation in epoch ${obs.epoch}`,
        { where },
      );
    }
    if (last > obs.epoch + 1) this.needsDuplicateScan = true;
    else this.hostLastEpoch[host] = obs.epoch + 1;

    const probedIndex = this.internProbed(obs);
    const tagSet = this.internTags(obs.tags);
    const capacity = i + 1;
    this.obsEpoch = grow32(this.obsEpoch, capacity);
    this.obsHost = grow32(this.obsHost, capacity);
    this.obsTagSet = grow32(this.obsTagSet, capacity);
    this.obsProbed = grow32(this.obsProbed, capacity);
    this.obsLine = grow32(this.obsLine, capacity);
    this.openStart = grow32(this.openStart, capacity + 1);
    this.openPorts = grow16(this.openPorts, this.openCount + obs.open.length);

    if (obs.epoch < this.maxEpoch) this.sortedByEpoch = false;
    if (obs.epoch > this.maxEpoch) this.maxEpoch = obs.epoch;
    this.predictedHost = host + 1 < this.hostIp.length ? host + 1 : 0;
    this.obsEpoch[i] = obs.epoch;
    this.obsHost[i] = host;
    this.obsTagSet[i] = tagSet;
    this.obsProbed[i] = probedIndex;
    this.obsLine[i] = line;
    this.openStart[i] = this.openCount;
    const ports = this.openPorts;
    let at = this.openCount;
    for (const port of obs.open) ports[at++] = port;
    this.openCount = at;
    this.openStart[i + 1] = at;
    if (obs.services !== undefined) this.services.set(i, obs.services);
    this.size = i + 1;
  }

  /** Finish: sort by epoch (stable), check duplicate (epoch, ip) pairs, and return the compact recording. */
  build(): LoadedRecording {
    if (this.built) throw new Error('RecordingBuilder.build() called twice');
    this.built = true;
    const n = this.size;
    const epochs = this.maxEpoch + 1;
    const epochStart = new Uint32Array(epochs + 1);
    for (let i = 0; i < n; i++) epochStart[this.obsEpoch[i]! + 1]!++;
    for (let e = 0; e < epochs; e++) epochStart[e + 1]! += epochStart[e]!;

    let obsEpoch: Uint32Array = this.obsEpoch.slice(0, n);
    let obsHost: Uint32Array = this.obsHost.slice(0, n);
    let obsTagSet: Uint32Array = this.obsTagSet.slice(0, n);
    let obsProbed: Uint32Array = this.obsProbed.slice(0, n);
    let obsLine: Uint32Array = this.obsLine.subarray(0, n);
    let openStart: Uint32Array = this.openStart.slice(0, n + 1);
    let openPorts: Uint16Array = this.openPorts.slice(0, this.openCount);
    let services: Map<number, ReadonlyMap<number, string>> = this.services;

    if (!this.sortedByEpoch) {
      // Counting sort by epoch: position of each observation in the sorted order.
      const cursor = epochStart.slice(0, epochs);
      const order = new Uint32Array(n);
      const rank = new Uint32Array(n);
      for (let i = 0; i < n; i++) {
        const at = cursor[obsEpoch[i]!]!++;
        order[at] = i;
        rank[i] = at;
      }
      const pick = (column: Uint32Array): Uint32Array => {
        const out = new Uint32Array(n);
        for (let k = 0; k < n; k++) out[k] = column[order[k]!]!;
        return out;
      };
      const newStart = new Uint32Array(n + 1);
      const newPorts = new Uint16Array(openPorts.length);
      let at = 0;
      for (let k = 0; k < n; k++) {
        const i = order[k]!;
        newStart[k] = at;
        newPorts.set(openPorts.subarray(openStart[i]!, openStart[i + 1]!), at);
        at += openStart[i + 1]! - openStart[i]!;
      }
      newStart[n] = at;
      const moved = new Map<number, ReadonlyMap<number, string>>();
      for (const [i, names] of services) moved.set(rank[i]!, names);
      obsEpoch = pick(obsEpoch);
      obsHost = pick(obsHost);
      obsTagSet = pick(obsTagSet);
      obsProbed = pick(obsProbed);
      obsLine = pick(obsLine);
      openStart = newStart;
      openPorts = newPorts;
      services = moved;
    }

    if (this.needsDuplicateScan) {
      // Within each epoch every host may appear once; `seen[h]` holds the epoch + 1 that last saw h.
      const seen = new Uint32Array(this.hostIp.length);
      for (let k = 0; k < n; k++) {
        const h = obsHost[k]!;
        const stamp = obsEpoch[k]! + 1;
        if (seen[h] === stamp) {
          throw new PortbanditError(
            'PB_ERR_RECORDING',
            `duplicate observation: host ${this.hostIp[h]} already has an observation in epoch ${stamp - 1}`,
            {
              // Stable order: the second sighting within an epoch is the later line in the file.
              where: `${this.source}:${obsLine[k]!}`,
            },
          );
        }
        seen[h] = stamp;
      }
    }

    // Release the growth buffers: the recording keeps only the trimmed copies.
    this.obsEpoch =
      this.obsHost =
      this.obsTagSet =
      this.obsProbed =
      this.obsLine =
      this.openStart =
      this.hostLastEpoch =
        new Uint32Array(0);
    this.openPorts = new Uint16Array(0);
    return Object.freeze({
      header: this.header,
      probed: this.probed,
      size: n,
      epochs,
      hostIp: Object.freeze(this.hostIp),
      obsEpoch,
      obsHost,
      obsTagSet,
      obsProbed,
      openStart,
      openPorts,
      tagSets: Object.freeze(this.tagSets),
      probedSets: Object.freeze(this.probedSets),
      epochStart,
      services,
    });
  }
}

function rawProbedKey(spec: string | readonly (number | string)[]): string {
  return typeof spec === 'string' ? spec : `\u0000${JSON.stringify(spec)}`;
}

/**
 * Build a recording from in-memory observations (tests, the synthetic generator). Validation is
 * the same as for a file; positions are reported as `<memory>:N` with the header on line 1.
 */
export function recordingFromObservations(header: unknown, observations: Iterable<Observation>, source = '<memory>'): LoadedRecording {
  const builder = new RecordingBuilder(header, { source });
  for (const obs of observations) builder.add(obs);
  return builder.build();
}
