import { afterAll, describe, expect } from 'vitest';
import { fc, test } from '@fast-check/vitest';
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { isPortbanditError } from '../../src/core/errors.js';
import { loadRecording, observations, recordingFromObservations } from '../../src/recording/index.js';
import { makeTempDir, recordingArbitrary, toNdjson } from './helpers.js';

const tmp = makeTempDir();
afterAll(() => tmp.cleanup());
let counter = 0;

/** A corruption of a text: an edit at a relative position. */
const corruption = fc.oneof(
  fc.record({
    kind: fc.constant('delete' as const),
    at: fc.double({ min: 0, max: 1, noNaN: true }),
    length: fc.integer({ min: 1, max: 12 }),
  }),
  fc.record({
    kind: fc.constant('insert' as const),
    at: fc.double({ min: 0, max: 1, noNaN: true }),
    text: fc.string({ unit: fc.constantFrom(...'{}[]",:0123456789-e.\n \\x\u00e9'), maxLength: 6 }),
  }),
  fc.record({ kind: fc.constant('truncate' as const), at: fc.double({ min: 0, max: 1, noNaN: true }) }),
  fc.record({ kind: fc.constant('byte' as const), at: fc.double({ min: 0, max: 1, noNaN: true }), byte: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ kind: fc.constant('repeat-line' as const), at: fc.double({ min: 0, max: 1, noNaN: true }) }),
);

function corrupt(text: string, c: { kind: string; at: number; length?: number; text?: string; byte?: number }): Buffer {
  const bytes = Buffer.from(text, 'utf8');
  const at = Math.min(bytes.length, Math.floor(c.at * bytes.length));
  switch (c.kind) {
    case 'delete':
      return Buffer.concat([bytes.subarray(0, at), bytes.subarray(at + c.length!)]);
    case 'insert':
      return Buffer.concat([bytes.subarray(0, at), Buffer.from(c.text!, 'utf8'), bytes.subarray(at)]);
    case 'truncate':
      return bytes.subarray(0, at);
    case 'byte': {
      const out = Buffer.from(bytes);
      if (at < out.length) out[at] = c.byte!;
      return out;
    }
    default: {
      const lines = text.split('\n');
      const i = Math.min(lines.length - 1, Math.floor(c.at * lines.length));
      lines.splice(i, 0, lines[i]!);
      return Buffer.from(lines.join('\n'), 'utf8');
    }
  }
}

describe('corrupted recordings', () => {
  test.prop([recordingArbitrary, corruption], { numRuns: 300 })(
    'either load as a valid recording or fail with PB_ERR_RECORDING naming a line',
    async ({ header, observations: input }, c) => {
      const { format: _f, version: _v, ...rest } = header;
      const path = join(tmp.dir, `c-${counter++ % 8}.ndjson`);
      writeFileSync(path, corrupt(toNdjson(rest, input), c));
      let loaded;
      try {
        loaded = await loadRecording(path);
      } catch (error) {
        // Never a TypeError, RangeError or a bare SyntaxError: always the coded error with file:line.
        expect(isPortbanditError(error, 'PB_ERR_RECORDING'), String(error)).toBe(true);
        expect((error as { where: string }).where).toMatch(new RegExp(`^${path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:[1-9]\\d*$`));
        return;
      }
      // What loaded is self-consistent: rebuilding from its own observations gives them back unchanged.
      const own = [...observations(loaded)];
      expect([...observations(recordingFromObservations(loaded.header, own, path))]).toEqual(own);
      for (let i = 0; i < loaded.size; i++) {
        const ports = Array.from(loaded.openPorts.subarray(loaded.openStart[i]!, loaded.openStart[i + 1]!));
        expect(ports.every((p, k) => k === 0 || p > ports[k - 1]!)).toBe(true);
        expect(ports.every((p) => loaded.probedSets[loaded.obsProbed[i]!]!.has(p))).toBe(true);
      }
      expect(loaded.openStart[loaded.size]).toBe(loaded.openPorts.length);
      expect(loaded.epochStart[loaded.epochs]).toBe(loaded.size);
    },
  );
});
