import { Writable } from 'node:stream';
import { main } from '../../src/cli/main.js';

/** A stream that keeps what is written to it, as text. */
class TextSink extends Writable {
  text = '';
  override _write(chunk: Buffer, _encoding: BufferEncoding, done: (error?: Error | null) => void): void {
    this.text += chunk.toString('utf8');
    done();
  }
}

/**
 * Run the CLI in-process with its own stdout and stderr (`main` takes its streams): the exit
 * code as `main` returns it and everything the run printed. `env` defaults to the process's.
 */
export async function runCli(
  args: readonly string[],
  options: { env?: NodeJS.ProcessEnv } = {},
): Promise<{ code: number; out: string; err: string }> {
  const stdout = new TextSink();
  const stderr = new TextSink();
  const code = await main(['node', 'portbandit', ...args], { stdout, stderr, env: options.env ?? process.env });
  return { code, out: stdout.text, err: stderr.text };
}
