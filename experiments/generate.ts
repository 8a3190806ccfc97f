import type { PortCatalog } from '../src/catalog/index.js';
import type { LoadedRecording } from '../src/recording/index.js';
import { generateRecording } from '../simulator/synthetic/index.js';

/** Generate a synthetic scope (simulator/synthetic) for an experiment cell. */
export function generateScope(
  options: { profile: string; hosts: number; epochs: number; seed: string },
  catalog: PortCatalog,
): LoadedRecording {
  return generateRecording(options, catalog);
}
