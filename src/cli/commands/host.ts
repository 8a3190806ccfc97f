import type { Command } from 'commander';
import { cliIo } from '../io.js';
import { PortbanditError } from '../../core/index.js';
import { diffScans, normalizeIp } from '../../coordinator/index.js';
import { parseInteger } from '../options.js';
import { formatScanLine } from './search.js';
import { withDataStore } from '../data-store.js';

/** Registers `portbandit host IP`: latest scan, history, or a diff between two scans. */
export function registerHost(program: Command): void {
  program
    .command('host')
    .description("A host's latest scan (--history: every scan; --diff: what changed between two scans).")
    .argument('<ip>', 'the address')
    .option('--data <dir>', 'data directory (env PORTBANDIT_DATA; default ./data)')
    .option('--history', 'list the scans, newest first')
    .option('--limit <n>', 'history length (default 20)', parseInteger(1, 1000), 20)
    .option('--diff', 'diff two scans: --from/--to scan ids, default the latest against the one before')
    .option('--from <scanId>', 'older scan of the diff')
    .option('--to <scanId>', 'newer scan of the diff')
    .option('--json', 'JSON output')
    .action(
      async (
        ipText: string,
        flags: { data?: string; history?: boolean; limit: number; diff?: boolean; from?: string; to?: string; json?: boolean },
      ) => {
        const ip = normalizeIp(ipText);
        await withDataStore(flags.data, async (app) => {
          const store = app.coordinator.store;
          const out = (value: unknown, text: () => string) => cliIo().stdout.write(flags.json ? JSON.stringify(value) + '\n' : text());
          if (flags.diff) {
            const history = (await store.hostHistory(ip, { limit: 2 })).items;
            const to = flags.to !== undefined ? await store.getScan(flags.to) : history[0];
            if (!to || to.ip !== ip)
              throw new PortbanditError(
                'PB_ERR_NOT_FOUND',
                flags.to !== undefined ? `no scan ${JSON.stringify(flags.to)} of ${ip}` : `no scan to diff for ${ip}`,
                { where: flags.to !== undefined ? '--to' : 'ip' },
              );
            const from = flags.from !== undefined ? await store.getScan(flags.from) : history.find((s) => s.scanId !== to.scanId);
            if (flags.from !== undefined && (!from || from.ip !== ip))
              throw new PortbanditError('PB_ERR_NOT_FOUND', `no scan ${JSON.stringify(flags.from)} of ${ip}`, { where: '--from' });
            const d = diffScans(from && from.ip === ip ? from : undefined, to);
            out({ ip, ...d }, () =>
              [
                `${ip}: ${d.from ?? '(nothing)'} -> ${d.to}`,
                ...d.opened.map((p) => `+ ${p.port} ${[p.service, p.product, p.version].filter(Boolean).join(' ')}`),
                ...d.closed.map((p) => `- ${p.port} ${[p.service, p.product, p.version].filter(Boolean).join(' ')}`),
                ...d.changed.map(
                  (c) =>
                    `~ ${c.port} ${[c.before.product, c.before.version].filter(Boolean).join(' ')} -> ${[c.after.product, c.after.version].filter(Boolean).join(' ')}`,
                ),
                '',
              ].join('\n'),
            );
            return;
          }
          if (flags.history) {
            const page = await store.hostHistory(ip, { limit: flags.limit });
            out(page, () => page.items.map((s) => `${s.scanId}\t${formatScanLine(s)}`).join('\n') + '\n');
            return;
          }
          const latest = await store.getLatestScan(ip);
          if (!latest) throw new PortbanditError('PB_ERR_NOT_FOUND', `${ip} has never been scanned`, { where: 'ip' });
          out(latest, () => formatScanLine(latest) + '\n');
        });
      },
    );
}
