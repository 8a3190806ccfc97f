import type { PortCatalog } from '../src/catalog/index.js';
import { PortbanditError, VERSION } from '../src/core/index.js';
import { type LoadedRecording, loadRecording } from '../src/recording/index.js';
import { UNTAGGED, simulate, type EpochsToDetect, type SimulationResult } from '../simulator/index.js';
import { createStrategy } from '../strategies/index.js';
import { recordingSeed } from './spec.js';
import type { CellMetrics, CellResult, CellSpec, DetectionStats } from './types.js';

/** Builds a generated scope; injected so the runner does not depend on the generator's internals. */
export type GenerateFn = (
  options: { profile: string; hosts: number; epochs: number; seed: string },
  catalog: PortCatalog,
) => LoadedRecording | Promise<LoadedRecording>;

/** What a worker keeps between cells: the port catalog and the last recordings it built. */
export interface CellContext {
  readonly catalog: PortCatalog;
  readonly generate: GenerateFn;
  /** Recordings by identity; a worker keeps a few so cells of one recording do not rebuild it. */
  readonly recordings: Map<string, Promise<LoadedRecording>>;
}

const KEEP_RECORDINGS = 3;

function recordingIdentity(cell: CellSpec): string {
  const r = cell.recording;
  return r.kind === 'file' ? `file:${r.path}` : `gen:${r.profile}:${r.hosts}:${r.epochs}:${recordingSeed(cell)}`;
}

/** The cell's recording, built or loaded once per worker and reused while cells need it. */
export function obtainRecording(cell: CellSpec, ctx: CellContext): Promise<LoadedRecording> {
  const id = recordingIdentity(cell);
  let recording = ctx.recordings.get(id);
  if (recording === undefined) {
    const r = cell.recording;
    recording =
      r.kind === 'file'
        ? loadRecording(r.path)
        : Promise.resolve().then(() =>
            ctx.generate({ profile: r.profile, hosts: r.hosts, epochs: r.epochs, seed: recordingSeed(cell) }, ctx.catalog),
          );
    ctx.recordings.set(id, recording);
    while (ctx.recordings.size > KEEP_RECORDINGS) ctx.recordings.delete(ctx.recordings.keys().next().value!);
  }
  return recording;
}

function detectionStats(d: EpochsToDetect): DetectionStats {
  return { count: d.count, detected: d.detected, censored: d.censored, mean: d.mean, median: d.median, histogram: d.histogram };
}

/** Reduce a simulation to what the statistics need (per-host columns, curves, detection). */
export function metricsFromSimulation(result: SimulationResult, where: string): CellMetrics {
  const h = result.perHost;
  if (h === undefined) throw new PortbanditError('PB_ERR_EXPERIMENT', 'the simulation has no per-host breakdown', { where });
  const d = result.epochsToDetect;
  return {
    total: result.total,
    found: result.found,
    probes: result.probes,
    hostEpochs: result.hostEpochs,
    perEpoch: result.perEpoch.map((e) => ({ epoch: e.epoch, total: e.total, found: e.found, probes: e.probes, hosts: e.hosts })),
    hosts: {
      ip: h.ip,
      tags: h.tagSet.map((t) => {
        const tags = h.tagSets[t] ?? [];
        return tags.length === 0 ? [UNTAGGED] : tags;
      }),
      total: h.total,
      found: h.found,
      probes: h.probes,
      epochs: h.observations,
    },
    detection: detectionStats(d),
    detectionByTag: Object.fromEntries(Object.entries(result.perTag).map(([tag, t]) => [tag, detectionStats(t.epochsToDetect)])),
  };
}

/** Run one cell: build the strategy, replay its recording, and keep the full metrics. */
export async function runCell(cell: CellSpec, key: string, ctx: CellContext): Promise<CellResult> {
  const where = `${cell.recording.name}/${cell.strategy.label}/budget ${cell.budget}/seed ${cell.seed}`;
  const recording = await obtainRecording(cell, ctx);
  const s = cell.strategy;
  const strategy = createStrategy(
    {
      strategy: s.strategy,
      params: s.params,
      budget: cell.budget,
      ...(s.mustHave !== undefined && { mustHave: s.mustHave }),
      ...(s.exclude !== undefined && { exclude: s.exclude }),
      ...(s.maxPerHost !== undefined && { maxPerHost: s.maxPerHost }),
      ...(s.pseudoThreshold !== undefined && { pseudoThreshold: s.pseudoThreshold }),
    },
    { catalog: ctx.catalog },
  );
  const result = simulate(recording, strategy, { seed: cell.seed, batch: cell.batch, order: cell.order, perHost: true, params: s.params });
  const { perHost: _perHost, ...simulation } = result;
  return { key, version: VERSION, cell, metrics: metricsFromSimulation(result, where), simulation };
}
