import { describe, expect, test } from 'vitest';
import { RecordingWriter } from '../../src/recording/writer.js';

describe('RecordingWriter', () => {
  test('a path that cannot be written is PB_ERR_IO naming the path', async () => {
    const path = '/nonexistent-dir/out.ndjson';
    await expect(RecordingWriter.open(path, { name: 'x', probed: '1-65535' })).rejects.toMatchObject({ code: 'PB_ERR_IO', where: path });
  });
});
