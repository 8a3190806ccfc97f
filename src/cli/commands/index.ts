import type { Command } from 'commander';

/** Registers one subcommand (or a group) on the program. One file per command in this folder. */
export type RegisterCommand = (program: Command) => void;

/** A top-level command, loaded only when it runs (or when the full --help is printed). */
export interface CommandEntry {
  readonly name: string;
  readonly load: () => Promise<RegisterCommand>;
}

/**
 * Every subcommand, in --help order. Add yours: one entry. Modules load lazily so that
 * `portbandit simulate` does not pay for fastify, jsdom or the Elasticsearch client.
 */
export const commands: readonly CommandEntry[] = [
  { name: 'serve', load: async () => (await import('./serve.js')).registerServe },
  { name: 'token', load: async () => (await import('./token.js')).registerToken },
  { name: 'policy', load: async () => (await import('./policy.js')).registerPolicy },
  { name: 'search', load: async () => (await import('./search.js')).registerSearch },
  { name: 'host', load: async () => (await import('./host.js')).registerHost },
  { name: 'events', load: async () => (await import('./events.js')).registerEvents },
  { name: 'export', load: async () => (await import('./export.js')).registerExport },
  { name: 'alert', load: async () => (await import('./alert.js')).registerAlert },
  { name: 'retention', load: async () => (await import('./retention.js')).registerRetention },
  { name: 'backup', load: async () => (await import('./backup.js')).registerBackup },
  { name: 'index', load: async () => (await import('./search-index.js')).registerSearchIndex },
  { name: 'scope', load: async () => (await import('./scope.js')).registerScope },
  { name: 'recording', load: async () => (await import('./recording.js')).registerRecording },
  { name: 'simulate', load: async () => (await import('./simulate.js')).registerSimulate },
  { name: 'strategy', load: async () => (await import('./strategy.js')).registerStrategy },
  { name: 'showcase', load: async () => (await import('./showcase.js')).registerShowcase },
  { name: 'experiment', load: async () => (await import('./experiment.js')).registerExperiment },
  { name: 'notebook', load: async () => (await import('./notebook.js')).registerNotebook },
  { name: 'lab', load: async () => (await import('./lab.js')).registerLab },
  { name: 'agent', load: async () => (await import('./agent.js')).registerAgent },
  { name: 'import', load: async () => (await import('./import.js')).registerImport },
];
