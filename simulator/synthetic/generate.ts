import { loadNmapServices, type PortCatalog } from '../../src/catalog/index.js';
import {
  recordingFromObservations,
  RECORDING_FORMAT,
  RECORDING_VERSION,
  type LoadedRecording,
  type Observation,
  type RecordingHeader,
} from '../../src/recording/index.js';
import { syntheticIp } from './address.js';
import { resolveGenerateOptions, SYNTHETIC_NETWORK, type GenerateOptions, type ResolvedGenerateOptions } from './options.js';
import { buildScopeModel, openPortsAt, planRollout, SUBNET_SIZE, type ScopeModel } from './scope-model.js';

/** Bumped whenever the same options would produce different bytes. */
export const GENERATOR_VERSION = 1;

/** Every generated recording probes every port: exact counterfactuals for any strategy. */
export const SYNTHETIC_PROBED = '1-65535';

function resolve(options: GenerateOptions | ResolvedGenerateOptions): ResolvedGenerateOptions {
  return 'profileName' in options ? options : resolveGenerateOptions(options);
}

/**
 * The header of a generated recording. `source` carries what the simulator needs to
 * interpret it: profile, seed, sizes, generator version and the rollout ({port, subnet, epoch}).
 */
export function scopeHeader(
  options: GenerateOptions | ResolvedGenerateOptions,
  catalog: PortCatalog = loadNmapServices(),
): RecordingHeader {
  const o = resolve(options);
  const rollout = planRollout(o, catalog);
  return {
    format: RECORDING_FORMAT,
    version: RECORDING_VERSION,
    name: `synthetic-${o.profileName}-${o.seed}`,
    probed: SYNTHETIC_PROBED,
    description: o.profile.description,
    source: {
      generator: 'portbandit.synthetic',
      generatorVersion: GENERATOR_VERSION,
      profile: o.profileName,
      seed: o.seed,
      hosts: o.hosts,
      epochs: o.epochs,
      network: SYNTHETIC_NETWORK,
      firstIp: syntheticIp(0),
      lastIp: syntheticIp(o.hosts - 1),
      subnetPrefix: 32 - Math.log2(SUBNET_SIZE),
      pseudoShare: o.profile.pseudoShare,
      pseudoMinPorts: o.profile.pseudoPorts[0],
      nmapTcpPorts: catalog.byFrequency.length,
      rollout: rollout && { port: rollout.port, subnet: rollout.subnet, epoch: rollout.epoch },
    },
  };
}

/** The observations of a built model: epoch by epoch, host by host (ascending addresses). */
export function* modelObservations(model: ScopeModel): Generator<Observation> {
  const { hosts, epochs } = model.options;
  const ips = Array.from({ length: hosts }, (_, h) => syntheticIp(h));
  for (let e = 0; e < epochs; e++) {
    for (let h = 0; h < hosts; h++) {
      yield { epoch: e, ip: ips[h]!, tags: model.subnets[Math.floor(h / SUBNET_SIZE)]!.tags, open: openPortsAt(model, h, e) };
    }
  }
}

/**
 * A synthetic scope's observations, epoch by epoch, host by host. The ground truth is built
 * first (compact typed arrays, a few MB for a /15), then lines are produced lazily.
 */
export function* generateObservations(
  options: GenerateOptions | ResolvedGenerateOptions,
  catalog: PortCatalog = loadNmapServices(),
): Generator<Observation> {
  yield* modelObservations(buildScopeModel(resolve(options), catalog));
}

/** A synthetic scope as an in-memory recording (tests, experiments). */
export function generateRecording(
  options: GenerateOptions | ResolvedGenerateOptions,
  catalog: PortCatalog = loadNmapServices(),
): LoadedRecording {
  const o = resolve(options);
  return recordingFromObservations(scopeHeader(o, catalog), generateObservations(o, catalog), `<synthetic ${o.profileName}>`);
}
