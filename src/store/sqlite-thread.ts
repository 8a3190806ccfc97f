import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { PortbanditError } from '../core/index.js';
import { openSqliteStore, type SqliteStoreOptions } from './sqlite-store.js';
import { type SerializedError, type ThreadCall, type ThreadReply, deserializeError } from './sqlite-thread-wire.js';
import type { ScanDocument, Store } from './types.js';

/**
 * The SQLite store on a thread of its own. The connection, its statements and its group commits
 * (SqliteStore) live on a worker thread; this side forwards each call and settles it with the
 * worker's answer. So the coordinator's event loop runs the HTTP and the strategies while the
 * writes, commits included, run on the second core (docs/coordinator.md, "The store's thread").
 *
 * What stays as in one thread: a write's promise settles after its commit; writes start in the
 * order they were made, and the writes made in one turn of this loop reach the worker in one
 * message, where they start in one turn, so that a lease batch's writes still share one commit.
 * Reads run here at once, on a read-only connection, and see what was committed when they run:
 * every write awaited before them, as on one thread (a write not yet awaited may or may not be
 * seen; on one thread it was not, until its group commit). What costs: each write's arguments and
 * result are copied between the threads, and the reading connection re-reads the pages the writer
 * changed: 13-23% more CPU per host visit in the coordinator benchmark.
 */

/**
 * The Store's reads: answered by a read-only connection on the calling thread (WAL readers see every
 * commit made before they start, so a read after an awaited write sees it).
 */
const READS = [
  'getScan',
  'getLatestScan',
  'latestAnsweredScan',
  'getLease',
  'listLeases',
  'countLeases',
  'getDocument',
  'listDocuments',
  'listScope',
  'getScopeVersion',
  'findAgentByTokenHash',
  'getAgent',
  'listAgents',
  'findAdminTokenByHash',
  'listAdminTokens',
  'hostHistory',
  'search',
  'count',
  'readEvents',
  'readEventsBackward',
  'counts',
  'topPorts',
  'topServices',
  'scansPerHour',
  'listQueuedWork',
  'countQueuedWork',
  'countOutbox',
  'readOutbox',
  'readLearning',
] as const satisfies readonly (keyof Store)[];

/** The Store's writes: sent to the store's thread. */
const WRITES = [
  'addScopeEntries',
  'removeScopeEntries',
  'replaceScope',
  'putDocument',
  'deleteDocument',
  'createAgent',
  'recordAgentActivity',
  'deleteAgent',
  'createAdminToken',
  'deleteAdminToken',
  'putLease',
  'renewLease',
  'completeLease',
  'takeExpiredLeases',
  'enqueueWork',
  'dequeueWork',
  'removeQueuedWork',
  'releaseQueuedWork',
  'dequeueWorkFor',
  'createFirstAdminToken',
  'holdRole',
  'pruneLearning',
  'ackOutbox',
  'ingestScan',
  'deleteHistory',
  'appendEvents',
] as const satisfies readonly (keyof Store)[];

type Forwarded = (typeof READS)[number] | (typeof WRITES)[number];
// Compile-time check that every method of Store is forwarded (or handled below).
type Unforwarded = Exclude<keyof Store, Forwarded | 'kind' | 'close' | 'exportHistory'>;
const everyMethodForwarded: [Unforwarded] extends [never] ? true : Unforwarded = true;
void everyMethodForwarded;

/**
 * The worker's entry: the built module, or under the tests (TypeScript sources) the source
 * module loaded through tsx (resolved from the working directory, the project's), which a worker
 * does not inherit from its parent.
 */
function startWorker(options: SqliteStoreOptions): Worker {
  const here = fileURLToPath(import.meta.url);
  const workerData = { options };
  if (!here.endsWith('.ts')) return new Worker(here.replace(/sqlite-thread\.js$/, 'sqlite-thread-worker.js'), { workerData });
  const entry = pathToFileURL(here.replace(/sqlite-thread\.ts$/, 'sqlite-thread-worker.ts')).href;
  const source = `import('tsx/esm/api').then((tsx) => { tsx.register(); return import(${JSON.stringify(entry)}); })`;
  return new Worker(source, { eval: true, workerData });
}

interface Waiting {
  readonly what: string;
  readonly resolve: (value: unknown) => void;
  readonly reject: (error: unknown) => void;
}

class ThreadStore {
  readonly kind = 'sqlite' as const;
  private nextId = 1;
  private readonly waiting = new Map<number, Waiting>();
  private outgoing: ThreadCall[] = [];
  /** Set once the worker is gone (closed, or failed): every later call fails with it. */
  gone: PortbanditError | undefined;
  private closing: Promise<void> | undefined;

  constructor(
    private readonly worker: Worker,
    private readonly file: string,
    /** The read-only connection on this thread. */
    readonly reader: Store,
  ) {
    worker.on('message', (replies: readonly ThreadReply[]) => {
      for (const reply of replies) this.settle(reply);
    });
    worker.on('error', (error) =>
      this.fail(new PortbanditError('PB_ERR_STORE', `the store's thread failed (${file}): ${error.message}`, { cause: error })),
    );
    worker.on('exit', (code) => this.fail(new PortbanditError('PB_ERR_STORE', `the store's thread exited (${file}, code ${code})`)));
  }

  call<T>(method: string, args: readonly unknown[]): Promise<T> {
    if (this.gone) return Promise.reject(this.gone);
    return new Promise<T>((resolve, reject) => {
      const id = this.nextId++;
      this.waiting.set(id, { what: method, resolve: resolve as (value: unknown) => void, reject });
      if (this.outgoing.push({ id, method, args }) === 1) process.nextTick(() => this.send());
    });
  }

  private send(): void {
    const calls = this.outgoing;
    this.outgoing = [];
    try {
      this.worker.postMessage(calls);
    } catch (error) {
      // A value that cannot be copied (a function, a symbol): the message was not sent, so fail its calls one by one.
      for (const call of calls) this.sendOne(call, error);
    }
  }

  private sendOne(call: ThreadCall, batchError: unknown): void {
    try {
      this.worker.postMessage([call]);
    } catch {
      const waiting = this.waiting.get(call.id);
      this.waiting.delete(call.id);
      const where = call.method === 'putDocument' ? `${String(call.args[0])}/${String(call.args[1])}` : undefined;
      waiting?.reject(
        call.method === 'putDocument'
          ? new PortbanditError('PB_ERR_DOCUMENT_VALUE', 'the document value has no JSON form', { where })
          : new PortbanditError(
              'PB_ERR_STORE',
              `${call.method}: its arguments cannot be sent to the store's thread: ${(batchError as Error).message}`,
            ),
      );
    }
  }

  private settle(reply: ThreadReply): void {
    const waiting = this.waiting.get(reply.id);
    if (waiting === undefined) return;
    this.waiting.delete(reply.id);
    if ('error' in reply) waiting.reject(deserializeError(reply.error as SerializedError, `${waiting.what} (${this.file})`));
    else waiting.resolve(reply.result);
  }

  private fail(error: PortbanditError): void {
    this.gone ??= error;
    for (const waiting of this.waiting.values()) waiting.reject(this.gone);
    this.waiting.clear();
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      // The reader first: the writer's connection, closed last, checkpoints and removes the WAL.
      await this.reader.close();
      if (this.gone) return;
      try {
        await this.call('close', []);
      } finally {
        this.gone ??= new PortbanditError('PB_ERR_STORE', `the store is closed (${this.file})`);
        await this.worker.terminate();
      }
    })();
    return this.closing;
  }

  exportHistory(options?: Parameters<Store['exportHistory']>[0]): AsyncIterable<ScanDocument> {
    return this.reader.exportHistory(options);
  }
}

for (const method of WRITES) {
  Object.defineProperty(ThreadStore.prototype, method, {
    value: function (this: ThreadStore, ...args: unknown[]) {
      return this.call(method, args);
    },
    writable: true,
    configurable: true,
  });
}
for (const method of READS) {
  Object.defineProperty(ThreadStore.prototype, method, {
    value: function (this: ThreadStore, ...args: unknown[]) {
      if (this.gone) return Promise.reject(this.gone);
      return (this.reader as unknown as Record<string, (...a: unknown[]) => Promise<unknown>>)[method]!(...args);
    },
    writable: true,
    configurable: true,
  });
}

/**
 * Open the SQLite store on its own thread (see above). Resolves once the worker has opened the
 * database (migrations included); a failure to open rejects with the worker's error.
 */
export async function openSqliteStoreOnThread(options: SqliteStoreOptions): Promise<Store> {
  if (options.path === ':memory:') {
    throw new PortbanditError(
      'PB_ERR_STORE',
      "writes on the store's thread need a database file: ':memory:' cannot be shared by two connections",
      {
        where: options.path,
      },
    );
  }
  const worker = startWorker(options);
  const opened = await new Promise<{ open: true } | { open: false; error: SerializedError }>((resolve) => {
    const settle = (outcome: { open: true } | { open: false; error: SerializedError }) => {
      worker.off('message', settle).off('error', failed).off('exit', exited);
      resolve(outcome);
    };
    const failed = (error: Error) => settle({ open: false, error: { message: error.message } });
    const exited = (code: number) => settle({ open: false, error: { message: `exited with code ${code} before opening the store` } });
    worker.on('message', settle).on('error', failed).on('exit', exited);
  });
  if (!opened.open) {
    await worker.terminate();
    throw deserializeError(opened.error, `opening ${options.path} on the store's thread`);
  }
  let reader: Store;
  try {
    reader = await openSqliteStore({ path: options.path, readOnly: true, checkpointIntervalMs: 0 });
  } catch (error) {
    await worker.terminate();
    throw error;
  }
  return new ThreadStore(worker, options.path, reader) as unknown as Store;
}
