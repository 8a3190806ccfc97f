import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { cliIo } from '../io.js';
import type { Command } from 'commander';
import { PortbanditError } from '../../core/index.js';
import type { StoreEvent } from '../../store/index.js';
import { openOutput } from '../output.js';
import { withResultSource } from '../result-source.js';

interface EventsFlags {
  data?: string;
  server?: string;
  tokenFile?: string;
  follow?: boolean;
  cursor?: string;
  cursorFile?: string;
  json?: boolean;
}

function serviceText(view: unknown): string {
  if (view === null || typeof view !== 'object') return '';
  const v = view as Record<string, unknown>;
  return [v.service, v.product, v.version].filter((x) => typeof x === 'string' && x !== '').join(' ');
}

/** One line per event for people: time, kind, address[:port], tags, the service (before -> after). */
export function formatEventLine(e: StoreEvent): string {
  const where = e.port !== undefined ? (e.ip.includes(':') ? `[${e.ip}]:${e.port}` : `${e.ip}:${e.port}`) : e.ip;
  const d = (e.detail ?? {}) as { before?: unknown; after?: unknown };
  const service =
    e.kind === 'service-changed' ? `${serviceText(d.before) || '?'} -> ${serviceText(d.after) || '?'}` : serviceText(e.detail);
  return [new Date(e.at).toISOString(), e.kind, where, e.tags.join(',') || '-', service].join('\t').trimEnd();
}

function readCursorFile(file: string): string | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (cause) {
    if ((cause as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new PortbanditError('PB_ERR_IO', `cannot read the cursor: ${(cause as Error).message}`, { where: file, cause });
  }
  const cursor = text.trim();
  return cursor === '' ? undefined : cursor;
}

/** Replace the cursor file atomically: a crash leaves the old cursor or the new one, never half. */
function writeCursorFile(file: string, cursor: string): void {
  try {
    writeFileSync(`${file}.tmp`, `${cursor}\n`);
    renameSync(`${file}.tmp`, file);
  } catch (cause) {
    throw new PortbanditError('PB_ERR_IO', `cannot write the cursor: ${(cause as Error).message}`, { where: file, cause });
  }
}

/** Registers `portbandit events [QUERY]`. */
export function registerEvents(program: Command): void {
  program
    .command('events')
    .description(
      'Service events (service-new, service-closed, service-changed, host-new), filtered by an event query: kind:service-new port:3389 tag:dmz.',
    )
    .argument('[query]', 'event query over kind, port, service, product, version, tag, ip, ctime and free text (empty = every event)', '')
    .option('--follow', 'keep streaming new events until interrupted (Ctrl-C); the cursor is printed on stderr at exit')
    .option('--cursor <cursor>', 'continue after this cursor (printed by an earlier run)')
    .option('--cursor-file <file>', 'read the cursor to continue from (if the file exists) and keep it up to date after every batch')
    .option('--json', 'NDJSON: one event object per line')
    .option('--data <dir>', 'data directory (env PORTBANDIT_DATA; default ./data)')
    .option('--server <url>', "a running coordinator's URL instead of a data directory (env PORTBANDIT_SERVER)")
    .option('--token-file <file>', 'with --server: the admin token file (default $PORTBANDIT_ADMIN_TOKEN)')
    .action(async (query: string, flags: EventsFlags) => {
      let cursor = flags.cursor ?? (flags.cursorFile !== undefined ? readCursorFile(flags.cursorFile) : undefined);
      const controller = new AbortController();
      const stop = () => controller.abort();
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      const out = openOutput(undefined);
      let count = 0;
      try {
        await withResultSource(flags, (source) =>
          source.events(
            { query, follow: flags.follow === true, signal: controller.signal, ...(cursor !== undefined ? { cursor } : {}) },
            {
              event: async (e) => {
                count++;
                await out.write(`${flags.json ? JSON.stringify(e) : formatEventLine(e)}\n`);
              },
              cursor: async (c) => {
                cursor = c;
                if (flags.cursorFile !== undefined) writeCursorFile(flags.cursorFile, c);
              },
            },
          ),
        );
      } finally {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
        cliIo().stderr.write(
          `events: ${count} shown; cursor ${cursor ?? '(start)'}${cursor !== undefined ? ` (continue with --cursor ${cursor})` : ''}\n`,
        );
      }
    });
}
