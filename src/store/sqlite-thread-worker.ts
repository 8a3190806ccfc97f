import { parentPort, workerData } from 'node:worker_threads';
import { openSqliteStore, type SqliteStoreOptions } from './sqlite-store.js';
import type { Store } from './types.js';
import { type ThreadCall, type ThreadReply, serializeError } from './sqlite-thread-wire.js';

/**
 * The store's thread (sqlite-thread.ts): owns the SQLite connection and runs the calls the
 * coordinator's thread sends, a turn's calls in one message. They are started in the order they
 * came, synchronously within the message, so the writes of one turn there share a group commit
 * here as they would in one thread (SqliteStore.batched).
 */
const port = parentPort!;
const options = (workerData as { options: SqliteStoreOptions }).options;

let store: Store;
try {
  store = await openSqliteStore(options);
} catch (error) {
  port.postMessage({ open: false, error: serializeError(error) });
  process.exit(0);
}
port.postMessage({ open: true });

const dispatch = store as unknown as Record<string, (...args: unknown[]) => Promise<unknown>>;

/** Replies settled in one drain of the microtask queue go back in one message. */
let outgoing: ThreadReply[] = [];
function reply(message: ThreadReply): void {
  if (outgoing.push(message) === 1) process.nextTick(flushReplies);
}
function flushReplies(): void {
  if (outgoing.length === 0) return;
  const batch = outgoing;
  outgoing = [];
  port.postMessage(batch);
}

function start(call: ThreadCall): Promise<unknown> {
  try {
    return dispatch[call.method]!(...call.args);
  } catch (error) {
    return Promise.reject(error);
  }
}

port.on('message', (calls: readonly ThreadCall[]) => {
  for (const call of calls) {
    if (call.method === 'close') {
      void store
        .close()
        .then(
          () => ({ id: call.id, result: undefined }),
          (error: unknown) => ({ id: call.id, error: serializeError(error) }),
        )
        .then((last: ThreadReply) => {
          flushReplies();
          port.postMessage([last]);
          port.close();
        });
      return;
    }
    start(call).then(
      (result) => reply({ id: call.id, result }),
      (error: unknown) => reply({ id: call.id, error: serializeError(error) }),
    );
  }
});
