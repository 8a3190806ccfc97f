import { Command, CommanderError } from 'commander';
import { resolveConfig } from '../../coordinator/index.js';
import { PortbanditError } from '../../core/index.js';
import {
  backfillIndex,
  type BackfillProgress,
  type ElasticsearchScanIndex,
  IndexedStore,
  openElasticsearchScanIndex,
  type Store,
  type StoreCounts,
  storeIdentity,
} from '../../store/index.js';
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

/**
 * The cluster and index prefix as `serve` reads them (--elasticsearch / PORTBANDIT_ELASTICSEARCH_URL,
 * --elasticsearch-prefix / PORTBANDIT_ELASTICSEARCH_PREFIX), checked by the same configuration
 * schema; a command on the index needs a cluster.
 */
function clusterOf(flags: { elasticsearch?: string; elasticsearchPrefix?: string }): { url: string; prefix: string } {
  const config = resolveConfig({
    flags: {
      ...(flags.elasticsearch !== undefined ? { elasticsearchUrl: flags.elasticsearch } : {}),
      ...(flags.elasticsearchPrefix !== undefined ? { elasticsearchPrefix: flags.elasticsearchPrefix } : {}),
      logLevel: 'silent',
    },
    env: cliIo().env,
  });
  if (config.elasticsearchUrl === '') {
    throw new PortbanditError('PB_ERR_FLAG_VALUE', 'name the Elasticsearch cluster: --elasticsearch URL or PORTBANDIT_ELASTICSEARCH_URL', {
      where: '--elasticsearch',
    });
  }
  return { url: config.elasticsearchUrl, prefix: config.elasticsearchPrefix };
}

/** Run `fn` on the data directory's own store (not through an index) and the named index, bound to it. */
function withStoreAndIndex<T>(
  flags: { data?: string; elasticsearch?: string; elasticsearchPrefix?: string },
  fn: (record: Store, index: ElasticsearchScanIndex, where: { prefix: string; origin: string }) => Promise<T>,
): Promise<T> {
  const { url, prefix } = clusterOf(flags);
  return withDataStore(
    flags.data,
    async ({ store }) => {
      // The store's own records: with PORTBANDIT_ELASTICSEARCH_URL set the local store is the
      // record plus the index, and the index is what is being filled or checked.
      const record = store instanceof IndexedStore ? store.record : store;
      const index = await openElasticsearchScanIndex({ node: url, prefix });
      try {
        await index.claimOwner(await storeIdentity(record));
        return await fn(record, index, { prefix, origin: new URL(url).origin });
      } finally {
        await index.close();
      }
    },
    { existing: { where: flags.data !== undefined ? '--data' : 'PORTBANDIT_DATA' } },
  );
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
      const size = batchSize(flags.batch);
      const since = flags.since !== undefined ? parseTime(flags.since) : undefined;
      const stderr = cliIo().stderr;
      const { summary, prefix } = await withStoreAndIndex(flags, async (record, index, where) => {
        const total = since === undefined ? await record.count(undefined, { view: 'history' }) : undefined;
        stderr.write(
          `index backfill: ${total !== undefined ? `${total} visits` : 'visits since ' + new Date(since!).toISOString()} into ${where.prefix}-* at ${where.origin}\n`,
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
        const options = { ...(since !== undefined ? { since } : {}), batchSize: size, events: flags.events, onProgress };
        return { summary: await backfillIndex(record, index, options), prefix: where.prefix };
      });
      cliIo().stdout.write(
        `sent ${summary.visits} visits (${summary.latest} hosts' latest) and ${summary.events} events to ${prefix}-*` +
          (summary.deleted > 0 ? `; ${summary.deleted} visits deleted by retention meanwhile were removed again` : '') +
          '\n',
      );
    });
}

interface CheckFlags {
  data?: string;
  elasticsearch?: string;
  elasticsearchPrefix?: string;
  json?: boolean;
}

/** What `index check` compares: the store's counts, the index's, and what the outbox still holds. */
export interface IndexCheck {
  readonly prefix: string;
  readonly store: StoreCounts;
  readonly index: StoreCounts;
  readonly outbox: number;
  /** `in-step`: the same counts; `behind`: they differ while the outbox holds records; `differs`: they differ with nothing waiting. */
  readonly verdict: 'in-step' | 'behind' | 'differs';
}

function createCheck(): Command {
  return new Command('check')
    .description(
      "Compare the store's counts (visits, hosts, events, open ports) with the Elasticsearch index's, next to the outbox's depth: " +
        'in step, behind by the outbox, or different with nothing waiting (exit code 1: run `index backfill`).',
    )
    .option('--data <dir>', 'data directory (env PORTBANDIT_DATA; default ./data); PORTBANDIT_POSTGRES_URL for a PostgreSQL store')
    .option('--elasticsearch <url>', 'the cluster (default $PORTBANDIT_ELASTICSEARCH_URL)')
    .option('--elasticsearch-prefix <prefix>', 'index name prefix (default $PORTBANDIT_ELASTICSEARCH_PREFIX or portbandit)')
    .option('--json', 'print the comparison as JSON')
    .action(async (flags: CheckFlags) => {
      const check = await withStoreAndIndex(flags, async (record, index, where): Promise<IndexCheck> => {
        await index.refresh();
        const [store, indexed, outbox] = await Promise.all([record.counts(), index.counts(), record.countOutbox()]);
        const same = (Object.keys(store) as (keyof StoreCounts)[]).every((k) => store[k] === indexed[k]);
        return { prefix: where.prefix, store, index: indexed, outbox, verdict: same ? 'in-step' : outbox > 0 ? 'behind' : 'differs' };
      });
      // Exit code 1 when the index differs with nothing waiting (main() returns a CommanderError's
      // code without printing it: the comparison above is the message).
      const done = (): void => {
        if (check.verdict === 'differs') throw new CommanderError(1, 'portbandit.index.differs', 'the index differs from the store');
      };
      if (flags.json) {
        cliIo().stdout.write(JSON.stringify(check) + '\n');
        return done();
      }
      const line = (c: StoreCounts) => `${c.scans} visits, ${c.hosts} hosts, ${c.events} events, ${c.openPorts} open ports`;
      cliIo().stdout.write(
        `store: ${line(check.store)}\nindex: ${line(check.index)} (${check.prefix}-*)\noutbox: ${check.outbox} records waiting\n` +
          (check.verdict === 'in-step'
            ? 'in step\n'
            : check.verdict === 'behind'
              ? 'behind by the outbox (a coordinator with --elasticsearch feeds it)\n'
              : 'differs with nothing waiting: run `portbandit index backfill`\n'),
      );
      done();
    });
}

/** Registers `portbandit index backfill|check`. */
export function registerSearchIndex(program: Command): void {
  const group = new Command('index').description(
    'The Elasticsearch search index: backfill (send what the store already holds), check (compare its counts with the store).',
  );
  for (const create of [createBackfill, createCheck]) {
    // addCommand() does not inherit settings: make nested errors reach main() like top-level ones.
    group.addCommand(create().exitOverride().showHelpAfterError('(run with --help for usage)'));
  }
  program.addCommand(group);
}
