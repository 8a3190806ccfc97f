import { createWriteStream, type WriteStream } from 'node:fs';
import { once } from 'node:events';
import { PortbanditError } from '../core/index.js';
import { RECORDING_FORMAT, RECORDING_VERSION, type LoadedRecording, type Observation, type RecordingHeader } from './types.js';
import { observationAt } from './observations.js';

/** Canonical header line (fixed key order, so the same recording always has the same bytes). */
export function formatHeader(header: Omit<RecordingHeader, 'format' | 'version'> & Partial<RecordingHeader>): string {
  const out: Record<string, unknown> = { format: RECORDING_FORMAT, version: RECORDING_VERSION, name: header.name, probed: header.probed };
  if (header.description !== undefined) out.description = header.description;
  if (header.source !== undefined) out.source = header.source;
  return JSON.stringify(out);
}

/** Canonical observation line: epoch, ip, tags, open, then probed and services when present. */
export function formatObservation(obs: Observation): string {
  const out: Record<string, unknown> = { epoch: obs.epoch, ip: obs.ip, tags: obs.tags, open: obs.open };
  if (obs.probed !== undefined) out.probed = obs.probed;
  if (obs.services !== undefined && Object.keys(obs.services).length > 0) out.services = obs.services;
  return JSON.stringify(out);
}

/**
 * Streams a recording to a file with backpressure: `await write(obs)` only waits when the
 * stream's buffer is full, so millions of lines go out at disk speed in bounded memory.
 */
export class RecordingWriter {
  private readonly stream: WriteStream;
  private readonly path: string;
  private chunk: string[] = [];
  private chunkBytes = 0;
  lines = 0;

  private constructor(path: string, stream: WriteStream) {
    this.path = path;
    this.stream = stream;
  }

  static async open(path: string, header: Omit<RecordingHeader, 'format' | 'version'>): Promise<RecordingWriter> {
    const stream = createWriteStream(path, { encoding: 'utf8' });
    try {
      // once() rejects with the stream's 'error' (ENOENT, EACCES, ...) before 'open'.
      await once(stream, 'open');
    } catch (cause) {
      throw new PortbanditError('PB_ERR_IO', `cannot write recording: ${(cause as Error).message}`, { where: path, cause });
    }
    const writer = new RecordingWriter(path, stream);
    await writer.push(formatHeader(header));
    return writer;
  }

  async write(obs: Observation): Promise<void> {
    await this.push(formatObservation(obs));
  }

  private async push(line: string): Promise<void> {
    this.chunk.push(line);
    this.chunkBytes += line.length + 1;
    this.lines++;
    // Batch lines into ~64 KiB writes: one write() per line costs more than the JSON itself.
    if (this.chunkBytes >= 65536) await this.flushChunk();
  }

  private async flushChunk(): Promise<void> {
    if (this.chunk.length === 0) return;
    const data = this.chunk.join('\n') + '\n';
    this.chunk = [];
    this.chunkBytes = 0;
    if (!this.stream.write(data)) await once(this.stream, 'drain');
  }

  async close(): Promise<void> {
    await this.flushChunk();
    this.stream.end();
    try {
      await once(this.stream, 'finish');
    } catch (cause) {
      throw new PortbanditError('PB_ERR_IO', 'cannot finish writing recording', { where: this.path, cause });
    }
  }
}

/** Write a loaded recording back to NDJSON (header, then observations in sorted order); it loads back identically. */
export async function writeRecording(path: string, rec: LoadedRecording): Promise<void> {
  const { format: _format, version: _version, ...header } = rec.header;
  const writer = await RecordingWriter.open(path, header);
  for (let i = 0; i < rec.size; i++) await writer.write(observationAt(rec, i));
  await writer.close();
}
