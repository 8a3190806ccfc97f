import type { Command } from 'commander';
import { cliIo } from '../io.js';
import { parseGroupList } from '../../coordinator/index.js';
import { collect } from '../options.js';
import { withDataStore } from '../data-store.js';

const dataOption = ['--data <dir>', 'data directory (env PORTBANDIT_DATA; default ./data)'] as const;

/** `portbandit agent add|groups|list`: the agent registry with agent groups (vantage points), on a data directory. */
export function registerAgentAdmin(agent: Command): void {
  agent
    .command('add')
    .description('Register a scanning agent, optionally in agent groups; prints its token on stdout (shown once).')
    .argument('<name>', 'agent name')
    .option('--group <names>', 'agent group (vantage point), e.g. internal; comma-separated or repeatable', collect, [])
    .option(...dataOption)
    .option('--json', 'print {id, name, groups, token} as JSON')
    .action(async (name: string, flags: { group: string[]; data?: string; json?: boolean }) => {
      const groups = parseGroupList(flags.group.join(','), '--group');
      await withDataStore(flags.data, async (app) => {
        const { agent: made, token } = await app.coordinator.createAgent(name, groups);
        if (flags.json) cliIo().stdout.write(JSON.stringify({ id: made.id, name: made.name, groups, token }) + '\n');
        else {
          cliIo().stdout.write(token + '\n');
          cliIo().stderr.write(
            `created agent ${made.id} (${made.name})${groups.length > 0 ? ` in ${groups.join(', ')}` : ' without groups'}; the token is shown only now.\n`,
          );
        }
      });
    });
  agent
    .command('groups')
    .description('Replace an agent\'s groups ("" removes them).')
    .argument('<id>', 'agent id (see agent list)')
    .argument('<groups>', 'comma-separated group names, e.g. internal,external')
    .option(...dataOption)
    .action(async (id: string, list: string, flags: { data?: string }) => {
      const groups = parseGroupList(list, 'groups');
      await withDataStore(flags.data, async (app) => {
        const set = await app.coordinator.setAgentGroups(id, groups);
        cliIo().stderr.write(`agent ${id}: ${set.length > 0 ? set.join(', ') : 'no groups'}\n`);
      });
    });
  agent
    .command('list')
    .description('Agents with their groups, last seen and work in flight.')
    .option(...dataOption)
    .option('--json', 'JSON output')
    .action(async (flags: { data?: string; json?: boolean }) => {
      await withDataStore(flags.data, async (app) => {
        const agents = (await app.coordinator.listAgents()).map(({ tokenHash: _h, ...a }) => a);
        if (flags.json) {
          cliIo().stdout.write(JSON.stringify(agents) + '\n');
          return;
        }
        for (const a of agents) {
          const seen = a.lastSeenAt !== undefined ? new Date(a.lastSeenAt).toISOString() : 'never';
          cliIo().stdout.write(`${a.id}\t${a.name}\tgroups ${a.groups.join(',') || '-'}\tlast seen ${seen}\tin flight ${a.inFlight}\n`);
        }
      });
    });
}
