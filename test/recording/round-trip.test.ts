import { afterAll, describe, expect, test as vtest } from 'vitest';
import { test } from '@fast-check/vitest';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { RecordingWriter, loadRecording, observations, recordingFromObservations, writeRecording } from '../../src/recording/index.js';
import { canonicalIp } from '../../src/core/address.js';
import { expectedObservations, makeTempDir, recordingArbitrary } from './helpers.js';

const tmp = makeTempDir();
afterAll(() => tmp.cleanup());
let counter = 0;

describe('recording round trip', () => {
  test.prop([recordingArbitrary], { numRuns: 40 })(
    'random observations written then loaded come back identical (sorted by epoch, stably)',
    async ({ header, observations: input }) => {
      // Arrange: stream the observations to a file in their (unsorted) order.
      const path = join(tmp.dir, `rt-${counter++}.ndjson`);
      const { format: _f, version: _v, ...rest } = header;
      const writer = await RecordingWriter.open(path, rest);
      for (const obs of input) await writer.write(obs);
      await writer.close();

      // Act
      const loaded = await loadRecording(path);

      // Assert
      const expected = expectedObservations(header.probed, input);
      expect([...observations(loaded)]).toEqual(expected);
      expect(loaded.size).toBe(input.length);
      expect(loaded.epochs).toBe(input.length === 0 ? 0 : Math.max(...input.map((o) => o.epoch)) + 1);
      expect(loaded.hostIp).toEqual([...new Set(input.map((o) => canonicalIp(o.ip)))]);
      expect(loaded.header).toEqual(header);

      // The in-memory builder and the file reader agree column for column.
      expect(recordingFromObservations(header, input)).toEqual(loaded);

      // Writing the loaded recording and loading it again is a fixed point, byte for byte.
      const again = join(tmp.dir, `rt-${counter++}.ndjson`);
      await writeRecording(again, loaded);
      const reloaded = await loadRecording(again);
      expect([...observations(reloaded)]).toEqual(expected);
      const third = join(tmp.dir, `rt-${counter++}.ndjson`);
      await writeRecording(third, reloaded);
      expect(readFileSync(third, 'utf8')).toBe(readFileSync(again, 'utf8'));
    },
  );

  vtest('a line split across read chunks is reassembled', async () => {
    // 36 lines of ~40 KiB (pseudo-service hosts) cross the reader's 1 MiB chunk boundaries.
    const open = Array.from({ length: 8000 }, (_, i) => i * 8 + 1);
    const input = [];
    for (let e = 0; e < 3; e++) for (let h = 0; h < 12; h++) input.push({ epoch: e, ip: `198.18.1.${h}`, tags: ['pseudo'], open });
    const rec = recordingFromObservations({ format: 'portbandit.recording', version: 1, name: 'big', probed: '1-65535' }, input);
    const path = join(tmp.dir, `big-${counter++}.ndjson`);
    await writeRecording(path, rec);
    const loaded = await loadRecording(path);
    expect(loaded.openPorts.length).toBe(8000 * 36);
    expect(Buffer.from(loaded.openPorts.buffer).equals(Buffer.from(rec.openPorts.buffer))).toBe(true);
    expect(Array.from(loaded.openStart)).toEqual(Array.from(rec.openStart));
  });
});
