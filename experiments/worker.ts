import { parentPort } from 'node:worker_threads';
import { loadNmapServices } from '../src/catalog/index.js';
import { isPortbanditError } from '../src/core/index.js';
import { generateScope } from './generate.js';
import { type CellContext, runCell } from './run-cell.js';
import type { WorkerReply, WorkerRequest } from './pool.js';

/** A cell worker: receives cells, replays them, posts results back. One cell at a time. */
function serve(): void {
  const port = parentPort;
  if (port === null) throw new Error('experiments/worker must run in a worker thread');
  let ctx: CellContext | undefined;
  port.on('message', (request: WorkerRequest) => {
    void (async () => {
      let reply: WorkerReply;
      try {
        ctx ??= { catalog: loadNmapServices(), generate: generateScope, recordings: new Map() };
        reply = { id: request.id, ok: true, result: await runCell(request.cell, request.key, ctx) };
      } catch (error) {
        reply = {
          id: request.id,
          ok: false,
          error: {
            message: error instanceof Error ? error.message : String(error),
            code: isPortbanditError(error) ? error.code : null,
            stack: error instanceof Error ? (error.stack ?? '') : '',
          },
        };
      }
      port.postMessage(reply);
    })();
  });
}

serve();
