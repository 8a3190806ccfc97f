import { PortbanditError } from '../src/core/errors.js';
import type { LoadedRecording } from '../src/recording/index.js';
import type { GenerateFn } from './run-cell.js';

interface GeneratorModule {
  generateRecording(options: { profile: string; hosts: number; epochs: number; seed: string }): LoadedRecording | Promise<LoadedRecording>;
}

// Resolved at run time so the experiment runner keeps working with file recordings while the
// generator is absent from a build.
const generatorPath = '../simulator/synthetic/index.js';

/** Generate a synthetic scope with simulator/synthetic's `generateRecording`. */
export const generateScope: GenerateFn = async (options) => {
  let mod: GeneratorModule;
  try {
    mod = (await import(generatorPath)) as GeneratorModule;
  } catch (error) {
    throw new PortbanditError('PB_ERR_EXPERIMENT', `the synthetic scope generator is not available: ${(error as Error).message}`, {
      where: `profile ${options.profile}`,
      cause: error,
    });
  }
  return mod.generateRecording(options);
};
