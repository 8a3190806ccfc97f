import type { Command } from 'commander';
import { cliIo } from '../io.js';
import { parseQuery, type ScanDocument } from '../../store/index.js';
import { parseInteger } from '../options.js';
import { withDataStore } from '../data-store.js';

/** One line per host for people: ip, tags, open ports with service/product/version. */
export function formatScanLine(scan: ScanDocument): string {
  const open = scan.ports
    .filter((p) => p.state === 'open')
    .map((p) => `${p.port}/${[p.service, p.product, p.version].filter(Boolean).join(' ') || '?'}`);
  return `${scan.ip}\t${scan.tags.join(',') || '-'}\t${new Date(scan.finishedAt).toISOString()}\t${open.join('; ')}${scan.incomplete !== undefined ? `\t(partial: ${scan.incomplete})` : ''}`;
}

/** Registers `portbandit search QUERY`. */
export function registerSearch(program: Command): void {
  program
    .command('search')
    .description(
      'Search the coordinator\'s results: port:* (any open port) port:22 service:ssh product:nginx tag:dmz ip:198.18.0.0/24 ctime:>2026-11-01 -port:80 "free text".',
    )
    .argument('[query]', 'query (empty = everything)', '')
    .option('--data <dir>', 'data directory (env PORTBANDIT_DATA; default ./data)')
    .option('--history', 'search every scan, not only the latest per host')
    .option('--limit <n>', 'results (1-1000, default 50; ignored by --format ndjson|hosts, which export all)', parseInteger(1, 1000), 50)
    .option('--format <format>', 'text (default), json (one page), ndjson (every match), hosts (unique addresses)', 'text')
    .action(async (text: string, flags: { data?: string; history?: boolean; limit: number; format: string }) => {
      const query = parseQuery(text);
      const view = flags.history ? 'history' : 'latest';
      await withDataStore(flags.data, async (app) => {
        const store = app.coordinator.store;
        if (flags.format === 'text' || flags.format === 'json') {
          const page = await store.search(query, { limit: flags.limit, view });
          if (flags.format === 'json') cliIo().stdout.write(JSON.stringify({ query: text, total: page.total, items: page.items }) + '\n');
          else {
            for (const scan of page.items) cliIo().stdout.write(formatScanLine(scan) + '\n');
            cliIo().stderr.write(`${page.items.length} of ${page.total} matches\n`);
          }
          return;
        }
        const seen = new Set<string>();
        let cursor: string | undefined;
        do {
          const page = await store.search(query, { limit: 1000, view, ...(cursor !== undefined ? { cursor } : {}) });
          for (const scan of page.items) {
            if (flags.format === 'hosts') {
              if (!seen.has(scan.ip)) cliIo().stdout.write(scan.ip + '\n');
              seen.add(scan.ip);
            } else cliIo().stdout.write(JSON.stringify(scan) + '\n');
          }
          cursor = page.nextCursor;
        } while (cursor !== undefined);
      });
    });
}
