import { createWriteStream } from 'node:fs';
import { cliIo } from './io.js';
import { once } from 'node:events';
import type { Writable } from 'node:stream';
import { PortbanditError } from '../core/index.js';

/** Where a command's data goes: a file (`--out`) or stdout, written with backpressure. */
export interface Output {
  write(text: string): Promise<void>;
  close(): Promise<void>;
}

/** Open `--out FILE` (created or truncated) or stdout when `file` is undefined or `-`. */
export function openOutput(file: string | undefined): Output {
  if (file === undefined || file === '-') {
    return {
      async write(text) {
        // The stdout of the CLI run in progress (main takes its streams; tests pass their own).
        if (!cliIo().stdout.write(text)) await once(cliIo().stdout as Writable, 'drain');
      },
      async close() {},
    };
  }
  const stream = createWriteStream(file, { encoding: 'utf8' });
  let failure: Error | undefined;
  stream.on('error', (error) => (failure = error));
  const check = () => {
    if (failure) throw new PortbanditError('PB_ERR_IO', `cannot write: ${failure.message}`, { where: file, cause: failure });
  };
  return {
    async write(text) {
      check();
      if (!stream.write(text)) await Promise.race([once(stream, 'drain'), once(stream, 'error')]);
      check();
    },
    async close() {
      stream.end();
      await Promise.race([once(stream, 'finish'), once(stream, 'error')]).catch(() => undefined);
      check();
    },
  };
}

/** `n noun` for messages, with the plural when n is not 1: `1 batch`, `2 batches`. */
export function counted(n: number | bigint, noun: string, plural = `${noun}s`): string {
  return `${n} ${n === 1 || n === 1n ? noun : plural}`;
}
