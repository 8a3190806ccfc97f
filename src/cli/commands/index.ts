import type { Command } from 'commander';
import { registerExperiment } from './experiment.js';
import { registerLab } from './lab.js';
import { registerNotebook } from './notebook.js';
import { registerRecording } from './recording.js';
import { registerScope } from './scope.js';
import { registerSimulate } from './simulate.js';

/** Registers one subcommand (or a group) on the program. One file per command in this folder. */
export type RegisterCommand = (program: Command) => void;

/** Every subcommand, in --help order. Add yours: one import, one entry. */
export const commands: RegisterCommand[] = [registerScope, registerRecording, registerSimulate, registerExperiment, registerNotebook, registerLab];
