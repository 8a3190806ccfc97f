import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { isUtf8 } from 'node:buffer';
import { PortbanditError } from '../core/index.js';
import { RecordingBuilder } from './builder.js';
import type { LoadedRecording } from './types.js';

/** Read size: large enough that per-chunk overhead vanishes, small enough to stay out of RSS. */
const CHUNK_BYTES = 1 << 20;

function parseLine(text: string, where: string): unknown {
  try {
    return JSON.parse(text);
  } catch (cause) {
    const detail = cause instanceof Error ? cause.message : String(cause);
    throw new PortbanditError('PB_ERR_RECORDING', `expected one JSON object per line (truncated or malformed line?): ${detail}`, {
      where,
      cause,
    });
  }
}

function isSystemError(error: unknown): boolean {
  return error instanceof Error && typeof (error as NodeJS.ErrnoException).syscall === 'string';
}

/**
 * Calls `onLine(text, lineNumber)` for every non-empty line of a UTF-8 file, streaming it in
 * chunks (a trailing "\r" is dropped, a leading byte-order mark is ignored). Bytes that are not
 * UTF-8 are a PB_ERR_RECORDING naming the line (never silently replaced); a file that cannot be
 * read is PB_ERR_IO.
 */
export async function forEachLine(
  path: string,
  onLine: (text: string, line: number) => void,
  onChunk?: (bytesRead: number, lines: number) => void,
): Promise<void> {
  const stream = createReadStream(path, { highWaterMark: CHUNK_BYTES });
  let line = 0;
  // Bytes after the last newline seen, waiting for the rest of their line.
  let pending: Buffer[] = [];
  const emit = (text: string): void => {
    line++;
    if (line === 1 && text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    if (text.endsWith('\r')) text = text.slice(0, -1);
    if (text.trim() === '') return;
    onLine(text, line);
  };
  /** Emit the lines of a block of whole lines (it ends with "\n" unless it is the file's tail). */
  const emitBlock = (block: Buffer): void => {
    // 0x0A never occurs inside a UTF-8 multi-byte sequence, so whole lines decode on their own.
    if (!isUtf8(block)) throwAtBadLine(block, line, path);
    const text = block.toString('utf8');
    let start = 0;
    let nl = text.indexOf('\n');
    while (nl !== -1) {
      emit(text.slice(start, nl));
      start = nl + 1;
      nl = text.indexOf('\n', start);
    }
    if (start < text.length) emit(text.slice(start));
  };
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      const last = chunk.lastIndexOf(0x0a);
      if (last === -1) {
        pending.push(chunk);
        continue;
      }
      const head = chunk.subarray(0, last + 1);
      emitBlock(pending.length === 0 ? head : Buffer.concat([...pending, head]));
      pending = last + 1 < chunk.length ? [chunk.subarray(last + 1)] : [];
      onChunk?.(stream.bytesRead, line);
    }
  } catch (cause) {
    if (!isSystemError(cause)) throw cause;
    const detail = cause instanceof Error ? cause.message : String(cause);
    throw new PortbanditError('PB_ERR_IO', `cannot read recording: ${detail}`, { where: path, cause });
  } finally {
    stream.destroy();
  }
  if (pending.length > 0) emitBlock(Buffer.concat(pending));
}

/** A block failed the UTF-8 check: find the first bad line in it and report it. */
function throwAtBadLine(block: Buffer, linesBefore: number, path: string): never {
  let start = 0;
  let line = linesBefore;
  for (;;) {
    line++;
    const nl = block.indexOf(0x0a, start);
    const end = nl === -1 ? block.length : nl;
    if (!isUtf8(block.subarray(start, end))) {
      throw new PortbanditError('PB_ERR_RECORDING', 'expected UTF-8 text, got bytes that are not valid UTF-8', {
        where: `${path}:${line}`,
      });
    }
    if (nl === -1) break;
    start = nl + 1;
  }
  throw new PortbanditError('PB_ERR_RECORDING', 'expected UTF-8 text, got bytes that are not valid UTF-8', { where: `${path}:${line}` });
}

/** Progress of a load, reported after each chunk read. */
export interface LoadProgress {
  readonly bytesRead: number;
  /** File size when the load started (0 if unknown). */
  readonly totalBytes: number;
  /** Lines read so far, including blank ones and the header. */
  readonly lines: number;
}

export interface LoadRecordingOptions {
  /** Called after each chunk (about 1 MiB), for a progress display on stderr. */
  readonly onProgress?: (progress: LoadProgress) => void;
}

/**
 * Load a recording file into the compact in-memory form, streaming: each line is parsed,
 * validated (the same checks as `recordingFromObservations`) and appended to a RecordingBuilder.
 * Any bad line rejects the whole load with PB_ERR_RECORDING naming `file:line`.
 */
export async function loadRecording(path: string, options: LoadRecordingOptions = {}): Promise<LoadedRecording> {
  let builder: RecordingBuilder | undefined;
  const { onProgress } = options;
  let totalBytes = 0;
  if (onProgress !== undefined)
    totalBytes = await stat(path).then(
      (s) => s.size,
      () => 0,
    );
  const onChunk = onProgress === undefined ? undefined : (bytesRead: number, lines: number) => onProgress({ bytesRead, totalBytes, lines });
  await forEachLine(
    path,
    (text, line) => {
      const where = `${path}:${line}`;
      const value = parseLine(text, where);
      if (builder === undefined) builder = new RecordingBuilder(value, { source: path, headerLine: line });
      else builder.add(value, line);
    },
    onChunk,
  );
  if (builder === undefined) {
    throw new PortbanditError(
      'PB_ERR_RECORDING',
      'expected a header line {"format":"portbandit.recording","version":1,...}, got an empty file',
      { where: `${path}:1` },
    );
  }
  return builder.build();
}
