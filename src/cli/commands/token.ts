import type { Command } from 'commander';
import { cliIo } from '../io.js';
import { PortbanditError } from '../../core/index.js';
import { withDataStore } from '../data-store.js';

/** Registers `portbandit token create|list|revoke` (works on the data directory). */
export function registerToken(program: Command): void {
  const token = program.command('token').description('Agent and admin tokens (shown once at creation, stored only as sha256 hashes).');
  token
    .command('create')
    .description('Create an agent token (--agent NAME) or an admin token (--admin NAME); prints the token on stdout.')
    .option('--agent <name>', 'register a scanning agent')
    .option('--admin <name>', 'create an admin token')
    .option('--data <dir>', 'data directory (env PORTBANDIT_DATA; default ./data)')
    .option('--json', 'print {id, name, kind, token} as JSON')
    .action(async (flags: { agent?: string; admin?: string; data?: string; json?: boolean }) => {
      if ((flags.agent === undefined) === (flags.admin === undefined))
        throw new PortbanditError('PB_ERR_FLAG_CONFLICT', 'give exactly one of --agent NAME or --admin NAME', { where: 'token create' });
      await withDataStore(flags.data, async (app) => {
        const made =
          flags.agent !== undefined
            ? await app.coordinator
                .createAgent(flags.agent)
                .then(({ agent, token: t }) => ({ id: agent.id, name: agent.name, kind: 'agent', token: t }))
            : await app.coordinator.createAdminToken(flags.admin!).then((t) => ({ id: t.id, name: t.name, kind: 'admin', token: t.token }));
        if (flags.json) cliIo().stdout.write(JSON.stringify(made) + '\n');
        else {
          cliIo().stdout.write(made.token + '\n');
          cliIo().stderr.write(`created ${made.kind} token ${made.id} (${made.name}); it is shown only now.\n`);
        }
      });
    });
  token
    .command('list')
    .description('List agents (last seen, version, counters) and admin tokens; never the tokens themselves.')
    .option('--data <dir>', 'data directory (env PORTBANDIT_DATA; default ./data)')
    .option('--json', 'JSON output')
    .action(async (flags: { data?: string; json?: boolean }) => {
      await withDataStore(flags.data, async (app) => {
        const agents = (await app.coordinator.listAgents()).map(({ tokenHash: _h, ...a }) => a);
        const admins = (await app.coordinator.store.listAdminTokens()).map(({ tokenHash: _h, ...a }) => a);
        if (flags.json) {
          cliIo().stdout.write(JSON.stringify({ agents, admins }) + '\n');
          return;
        }
        for (const a of agents) {
          const seen = a.lastSeenAt !== undefined ? new Date(a.lastSeenAt).toISOString() : 'never';
          cliIo().stdout.write(
            `agent\t${a.id}\t${a.name}\tlast seen ${seen}\tin flight ${a.inFlight}\tvisits ${a.counters.visits ?? 0}\trounds ${a.counters.results ?? 0}\tversion ${a.version ?? '-'}\n`,
          );
        }
        for (const a of admins) cliIo().stdout.write(`admin\t${a.id}\t${a.name}\tcreated ${new Date(a.createdAt).toISOString()}\n`);
      });
    });
  token
    .command('revoke')
    .description('Revoke an agent or admin token by id.')
    .argument('<id>', 'agent_... or admin_... id (see token list)')
    .option('--data <dir>', 'data directory (env PORTBANDIT_DATA; default ./data)')
    .action(async (id: string, flags: { data?: string }) => {
      await withDataStore(flags.data, async (app) => {
        const done = id.startsWith('admin_')
          ? { deleted: await app.coordinator.store.deleteAdminToken(id), released: 0 }
          : await app.coordinator.deleteAgent(id);
        if (!done.deleted)
          throw new PortbanditError('PB_ERR_NOT_FOUND', `no agent or admin token with id ${id}`, { where: 'token revoke' });
        cliIo().stderr.write(`revoked ${id}${done.released > 0 ? `; its ${done.released} lease(s) went back to the queue` : ''}\n`);
      });
    });
}
