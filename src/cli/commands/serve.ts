import type { Command } from 'commander';
import { cliIo } from '../io.js';
import { closeOnSignals, resolveConfig, startServer } from '../../coordinator/index.js';
import { addConfigOptions } from '../config-options.js';
import { PortbanditError } from '../../core/index.js';

interface ServeFlags {
  config?: string;
  dns?: string;
  resolver?: string;
  [flag: string]: unknown;
}

/** Registers `portbandit serve`: the coordinator (fastify + embedded SQLite). */
export function registerServe(program: Command): void {
  const serve = program
    .command('serve')
    .description('Run the coordinator: scope, cyclic work distribution, learned port sets per tag, results, search (SQLite under --data).');
  // Every setting's flag, help, env and default come from the config schema (coordinator/config.ts).
  const configFlags = addConfigOptions(serve);
  serve
    .option('--config <file>', 'JSON config file (env PORTBANDIT_CONFIG); flags and env override it')
    .option('--dns <address:port>', 'resolve scope names with this DNS server, e.g. 127.0.0.1:5353 (same as --resolver dns:ADDRESS:PORT)')
    .action(async (flags: ServeFlags) => {
      if (flags.resolver !== undefined && flags.dns !== undefined)
        throw new PortbanditError('PB_ERR_FLAG_CONFLICT', 'give either --resolver or --dns, not both', { where: '--dns' });
      const resolver = flags.dns !== undefined ? `dns:${flags.dns}` : flags.resolver;
      const config = resolveConfig({
        flags: { ...configFlags(flags), resolver },
        env: cliIo().env,
        ...(flags.config !== undefined ? { file: flags.config } : {}),
      });
      const app = await startServer(config, {}, cliIo().stderr);
      closeOnSignals(app);
      // Keep the action pending until the server closes so commander does not return early.
      await new Promise<void>((resolve) => app.server.once('close', () => resolve()));
    });
}
