import { existsSync } from 'node:fs';
import { Command } from 'commander';
import { databasePath, resolveConfig } from '../../coordinator/index.js';
import { PortbanditError } from '../../core/index.js';
import { backfillIndex, type BackfillProgress } from '../../store/backfill.js';
import { openElasticsearchScanIndex } from '../../store/elasticsearch-store.js';
import { IndexedStore } from '../../store/indexed-store.js';
import { storeIdentity } from '../../store/store-identity.js';
import { withDataStore } from '../data-store.js';
import { cliIo } from '../io.js';
import { parseTime } from '../options.js';

interface BackfillFlags {
  data?: string;
  elasticsearch?: string;
  elasticsearchPrefix?: string;
  since?: string;
  batch?: string;
  events: boolean;
}

/** The cluster's URL: --elasticsearch, else PORTBANDIT_ELASTICSEARCH_URL (as `serve` reads it). */
function clusterUrl(flags: BackfillFlags): string {
  const url = flags.elasticsearch ?? cliIo().env.PORTBANDIT_ELASTICSEARCH_URL ?? '';
  const where = flags.elasticsearch !== undefined ? '--elasticsearch' : 'PORTBANDIT_ELASTICSEARCH_URL';
  if (url === '') {
    throw new PortbanditError(
      'PB_ERR_FLAG_VALUE',
      'name the Elasticsearch cluster to fill: --elasticsearch URL or PORTBANDIT_ELASTICSEARCH_URL',
      {
        where: '--elasticsearch',
      },
    );
  }
  if (!/^https?:\/\/[^\s/]+/u.test(url)) {
    throw new PortbanditError('PB_ERR_FLAG_VALUE', `expected an http(s) URL such as "http://127.0.0.1:9200", got ${JSON.stringify(url)}`, {
      where,
    });
  }
  return url;
}

function batchSize(text: string | undefined): number {
  if (text === undefined) return 500;
  const n = Number(text);
  if (!/^\d+$/u.test(text) || n < 1 || n > 10_000) {
    throw new PortbanditError('PB_ERR_FLAG_VALUE', `expected an integer 1-10000, got ${JSON.stringify(text)}`, { where: '--batch' });
  }
  return n;
}

function createBackfill(): Command {
  return new Command('backfill')
    .description(
      "Send what the store already holds (history, each host's latest, events) into the Elasticsearch index: for a deployment that adds " +
        '--elasticsearch to a store with results in it (the outbox carries only what is stored after). Idempotent; safe next to a running coordinator.',
    )
    .option('--data <dir>', 'data directory (env PORTBANDIT_DATA; default ./data); PORTBANDIT_POSTGRES_URL for a PostgreSQL store')
    .option('--elasticsearch <url>', 'the cluster (default $PORTBANDIT_ELASTICSEARCH_URL)')
    .option('--elasticsearch-prefix <prefix>', 'index name prefix (default $PORTBANDIT_ELASTICSEARCH_PREFIX or portbandit)')
    .option('--since <time>', 'only visits finished at or after (ISO date or ms); events are sent whole')
    .option('--batch <n>', 'visits per _bulk request (1-10000)', '500')
    .option('--no-events', 'leave the stored events out')
    .action(async (flags: BackfillFlags) => {
      const url = clusterUrl(flags);
      const prefix = flags.elasticsearchPrefix ?? (cliIo().env.PORTBANDIT_ELASTICSEARCH_PREFIX || 'portbandit');
      const size = batchSize(flags.batch);
      const since = flags.since !== undefined ? parseTime(flags.since) : undefined;
      const stderr = cliIo().stderr;
      // Nothing to send from a directory with no store (a mistyped --data): say so, make none.
      const config = resolveConfig({
        flags: { ...(flags.data !== undefined ? { dataDir: flags.data } : {}), logLevel: 'silent' },
        env: process.env,
      });
      if (config.postgresUrl === '' && !existsSync(databasePath(config.dataDir))) {
        throw new PortbanditError(
          'PB_ERR_FLAG_VALUE',
          `${config.dataDir} holds no store (${databasePath(config.dataDir)}); nothing to backfill`,
          {
            where: flags.data !== undefined ? '--data' : 'PORTBANDIT_DATA',
          },
        );
      }
      const summary = await withDataStore(flags.data, async ({ store }) => {
        // The store's own history: with PORTBANDIT_ELASTICSEARCH_URL set the local store is the
        // record plus the index, whose history is what is being filled.
        const record = store instanceof IndexedStore ? store.record : store;
        const index = await openElasticsearchScanIndex({ node: url, prefix });
        try {
          await index.claimOwner(await storeIdentity(record));
          const total = since === undefined ? await record.count(undefined, { view: 'history' }) : undefined;
          stderr.write(
            `index backfill: ${total !== undefined ? `${total} visits` : 'visits since ' + new Date(since!).toISOString()} into ${prefix}-* at ${new URL(url).origin}\n`,
          );
          const started = performance.now();
          let said = started;
          const onProgress = (p: BackfillProgress) => {
            const now = performance.now();
            if (now - said < 2000) return;
            said = now;
            const share = total ? ` (${((100 * p.visits) / total).toFixed(0)}%)` : '';
            stderr.write(
              `index backfill: ${p.visits} visits${share}, ${p.events} events, ${((1000 * p.visits) / (now - started)).toFixed(0)} visits/s\n`,
            );
          };
          return await backfillIndex(record, index, {
            ...(since !== undefined ? { since } : {}),
            batchSize: size,
            events: flags.events,
            onProgress,
          });
        } finally {
          await index.close();
        }
      });
      cliIo().stdout.write(
        `sent ${summary.visits} visits (${summary.latest} hosts' latest) and ${summary.events} events to ${prefix}-*` +
          (summary.deleted > 0 ? `; ${summary.deleted} visits deleted by retention meanwhile were removed again` : '') +
          '\n',
      );
    });
}

/** Registers `portbandit index backfill`. */
export function registerSearchIndex(program: Command): void {
  const group = new Command('index').description('The Elasticsearch search index: backfill (send what the store already holds).');
  // addCommand() does not inherit settings: make nested errors reach main() like top-level ones.
  group.addCommand(createBackfill().exitOverride().showHelpAfterError('(run with --help for usage)'));
  program.addCommand(group);
}
