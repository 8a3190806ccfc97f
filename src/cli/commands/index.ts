import type { Command } from 'commander';
import { registerAgent } from './agent.js';
import { registerExperiment } from './experiment.js';
import { registerHost } from './host.js';
import { registerImport } from './import.js';
import { registerLab } from './lab.js';
import { registerNotebook } from './notebook.js';
import { registerPolicy } from './policy.js';
import { registerRecording } from './recording.js';
import { registerScope } from './scope.js';
import { registerSearch } from './search.js';
import { registerServe } from './serve.js';
import { registerShowcase } from './showcase.js';
import { registerSimulate } from './simulate.js';
import { registerStrategy } from './strategy.js';
import { registerToken } from './token.js';

/** Registers one subcommand (or a group) on the program. One file per command in this folder. */
export type RegisterCommand = (program: Command) => void;

/** Every subcommand, in --help order. Add yours: one import, one entry. */
export const commands: RegisterCommand[] = [registerServe, registerToken, registerPolicy, registerSearch, registerHost, registerScope, registerRecording, registerSimulate, registerStrategy, registerShowcase, registerExperiment, registerNotebook, registerLab, registerAgent, registerImport];
