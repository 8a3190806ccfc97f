import { AsyncLocalStorage } from 'node:async_hooks';

/**
 * The streams and environment a CLI run reads and writes. `main()` takes them and runs the
 * command with them as its context, so tests run the CLI in-process with their own streams
 * (test/helpers/cli.ts) and two runs at once never see each other's output. Commands read them
 * with `cliIo()`. stdout is for data, stderr for people.
 */
export interface CliIo {
  readonly stdout: NodeJS.WritableStream & { readonly isTTY?: boolean };
  readonly stderr: NodeJS.WritableStream & { readonly isTTY?: boolean };
  readonly env: NodeJS.ProcessEnv;
}

/** The process's own streams and environment (what the `portbandit` binary runs with). */
export function processIo(): CliIo {
  return { stdout: process.stdout, stderr: process.stderr, env: process.env };
}

const current = new AsyncLocalStorage<CliIo>();

/** Run `fn` (a CLI run) with `io` as the streams every command writes to. */
export function runWithIo<T>(io: CliIo, fn: () => Promise<T>): Promise<T> {
  return current.run(io, fn);
}

/** The streams of the CLI run in progress (the process's own outside `main`). */
export function cliIo(): CliIo {
  return current.getStore() ?? processIo();
}
