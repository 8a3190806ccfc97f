import type { Command } from 'commander';

/** Registers one subcommand (or a group) on the program. One file per command in this folder. */
export type RegisterCommand = (program: Command) => void;

/** Every subcommand, in --help order. Add yours: one import, one entry. */
export const commands: RegisterCommand[] = [];
