import { Command } from 'commander';
import { cliIo } from '../io.js';
import { PortbanditError, errorCodes, type ErrorCode } from '../../core/index.js';
import {
  addAlertRule,
  listAlertRules,
  listDeadLetters,
  removeAlertRule,
  type AlertRule,
  type DeadLetter,
} from '../../coordinator/index.js';
import { adminToken } from '../result-source.js';
import { withDataStore } from '../data-store.js';

interface Flags {
  data?: string;
  server?: string;
  tokenFile?: string;
  json?: boolean;
}

/** The alert admin calls, over a data directory or a running coordinator's API. */
interface AlertAdmin {
  add(input: { name: string; query: string; url: string }): Promise<AlertRule>;
  list(): Promise<AlertRule[]>;
  remove(name: string): Promise<void>;
  dead(): Promise<DeadLetter[]>;
}

async function withAlertAdmin<T>(flags: Flags, fn: (admin: AlertAdmin) => Promise<T>): Promise<T> {
  if (flags.server !== undefined && flags.data !== undefined)
    throw new PortbanditError('PB_ERR_FLAG_CONFLICT', 'give either --server or --data, not both', { where: '--server' });
  const server = flags.server ?? (flags.data === undefined ? cliIo().env.PORTBANDIT_SERVER : undefined);
  if (server !== undefined && server !== '') {
    const token = adminToken(flags.tokenFile);
    const call = async <R>(method: string, path: string, body?: unknown): Promise<R> => {
      const url = new URL(path, server);
      let res: Response;
      try {
        res = await fetch(url, {
          method,
          headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
          ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        });
      } catch (cause) {
        throw new PortbanditError('PB_ERR_IO', `cannot reach the coordinator: ${(cause as Error).message}`, { where: url.origin, cause });
      }
      const json = (await res.json().catch(() => ({}))) as R & { code?: string; message?: string };
      if (!res.ok)
        throw new PortbanditError(
          (json.code !== undefined && json.code in errorCodes ? json.code : 'PB_ERR_INTERNAL') as ErrorCode,
          json.message ?? `HTTP ${res.status}`,
          { where: `${url.origin}${url.pathname}` },
        );
      return json;
    };
    return fn({
      add: (input) => call('POST', '/api/v1/admin/alerts', input),
      list: async () => (await call<{ rules: AlertRule[] }>('GET', '/api/v1/admin/alerts')).rules,
      remove: async (name) => void (await call('DELETE', `/api/v1/admin/alerts/${encodeURIComponent(name)}`)),
      dead: async () => (await call<{ deadLetters: DeadLetter[] }>('GET', '/api/v1/admin/alerts/dead')).deadLetters,
    });
  }
  return withDataStore(flags.data, (app) => {
    const store = app.coordinator.store;
    return fn({
      add: (input) => addAlertRule(store, input, app.coordinator.now()),
      list: () => listAlertRules(store),
      remove: (name) => removeAlertRule(store, name),
      dead: () => listDeadLetters(store),
    });
  });
}

function withSourceOptions(cmd: Command): Command {
  return cmd
    .option('--data <dir>', 'data directory (env PORTBANDIT_DATA; default ./data)')
    .option('--server <url>', "a running coordinator's URL instead of a data directory (env PORTBANDIT_SERVER)")
    .option('--token-file <file>', 'with --server: the admin token file (default $PORTBANDIT_ADMIN_TOKEN)');
}

/** Registers `portbandit alert add|list|rm|dead`. */
export function registerAlert(program: Command): void {
  const group = new Command('alert').description(
    'Alert rules: an event query whose matches are POSTed to a webhook, with retries and a dead-letter list.',
  );
  const add = withSourceOptions(
    new Command('add')
      .description('Add a rule; it alerts on events from now on (the running coordinator delivers them).')
      .argument('<name>', 'the rule name (letters, digits, . _ -)')
      .requiredOption('--query <query>', 'event query, e.g. "kind:service-new port:3389 tag:dmz"')
      .requiredOption('--url <url>', 'the webhook (http or https); each match is POSTed as {rule, query, event}'),
  ).action(async (name: string, flags: Flags & { query: string; url: string }) => {
    const rule = await withAlertAdmin(flags, (admin) => admin.add({ name, query: flags.query, url: flags.url }));
    cliIo().stdout.write(`${JSON.stringify(rule)}\n`);
  });
  const list = withSourceOptions(new Command('list').description('List the rules.').option('--json', 'one JSON object')).action(
    async (flags: Flags) => {
      const rules = await withAlertAdmin(flags, (admin) => admin.list());
      if (flags.json) cliIo().stdout.write(`${JSON.stringify({ rules })}\n`);
      else for (const r of rules) cliIo().stdout.write(`${r.name}\t${r.query}\t${r.url}\t${r.cursor ?? '-'}\n`);
    },
  );
  const rm = withSourceOptions(
    new Command('rm').description('Delete a rule (its dead letters stay).').argument('<name>', 'the rule name'),
  ).action(async (name: string, flags: Flags) => {
    await withAlertAdmin(flags, (admin) => admin.remove(name));
    cliIo().stderr.write(`alert: rule ${name} removed\n`);
  });
  const dead = withSourceOptions(
    new Command('dead').description('Events a rule could not deliver after every retry.').option('--json', 'one JSON object'),
  ).action(async (flags: Flags) => {
    const letters = await withAlertAdmin(flags, (admin) => admin.dead());
    if (flags.json) cliIo().stdout.write(`${JSON.stringify({ deadLetters: letters })}\n`);
    else
      for (const d of letters)
        cliIo().stdout.write(
          `${new Date(d.failedAt).toISOString()}\t${d.rule}\t${d.event.kind}\t${d.event.ip}${d.event.port !== undefined ? `:${d.event.port}` : ''}\t${d.attempts} attempts\t${d.error}\n`,
        );
  });
  for (const cmd of [add, list, rm, dead]) group.addCommand(cmd.exitOverride().showHelpAfterError('(run with --help for usage)'));
  program.addCommand(group);
}
