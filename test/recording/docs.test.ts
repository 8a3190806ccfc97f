import { readFileSync } from 'node:fs';
import { afterAll, describe, expect, test as vtest } from 'vitest';
import { test } from '@fast-check/vitest';
import { PortRanges } from '../../src/core/ports.js';
import {
  formatHeader,
  formatObservation,
  loadRecording,
  observations,
  validateHeader,
  validateObservation,
} from '../../src/recording/index.js';
import { checkSchema } from './mini-schema.js';
import { makeTempDir, recordingArbitrary } from './helpers.js';

const tmp = makeTempDir();
afterAll(() => tmp.cleanup());

const doc = readFileSync(new URL('../../docs/recording-format.md', import.meta.url), 'utf8');
const schema = JSON.parse(readFileSync(new URL('../../docs/recording.schema.json', import.meta.url), 'utf8')) as Record<string, unknown>;
const defs = schema.$defs as Record<string, { examples: unknown[] }>;
const ndjsonBlocks = [...doc.matchAll(/```ndjson\n([\s\S]*?)```/g)].map((m) => m[1]!);
const ALL = PortRanges.parse('1-65535');

describe('docs/recording-format.md and docs/recording.schema.json', () => {
  vtest('the format document has example recordings and uses only 198.18.0.0/15 addresses', () => {
    expect(ndjsonBlocks.length).toBeGreaterThanOrEqual(2);
    for (const ip of doc.matchAll(/\b\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\b/g)) expect(ip[0]).toMatch(/^198\.1[89]\./);
  });

  vtest.each(ndjsonBlocks.map((block, i) => [i, block] as const))(
    'example recording %i loads and every line fits the schema',
    async (i, block) => {
      const rec = await loadRecording(tmp.file(`doc-${i}.ndjson`, block));
      const lines = block.trim().split('\n');
      expect(rec.size).toBe(lines.length - 1);
      expect([...observations(rec)].length).toBe(lines.length - 1);
      for (const line of lines) expect(checkSchema(schema, JSON.parse(line))).toEqual([]);
    },
  );

  vtest('every schema example is accepted by the reader and by the schema', () => {
    expect(defs.header!.examples.length).toBeGreaterThan(0);
    expect(defs.observation!.examples.length).toBeGreaterThan(0);
    for (const h of defs.header!.examples) {
      expect(() => validateHeader(h, 'schema')).not.toThrow();
      expect(checkSchema(schema, h)).toEqual([]);
    }
    for (const o of defs.observation!.examples) {
      expect(() => validateObservation(o, 'schema', ALL)).not.toThrow();
      expect(checkSchema(schema, o)).toEqual([]);
    }
  });

  vtest.each([
    ['a negative epoch', { epoch: -1, ip: '198.18.0.1', tags: [], open: [] }],
    ['port 0', { epoch: 0, ip: '198.18.0.1', tags: [], open: [0] }],
    ['a repeated open port', { epoch: 0, ip: '198.18.0.1', tags: [], open: [22, 22] }],
    ['a repeated tag', { epoch: 0, ip: '198.18.0.1', tags: ['a', 'a'], open: [] }],
    ['an empty tag', { epoch: 0, ip: '198.18.0.1', tags: [''], open: [] }],
    ['a bad address', { epoch: 0, ip: '198.18.0', tags: [], open: [] }],
    ['a service key with a leading zero', { epoch: 0, ip: '198.18.0.1', tags: [], open: [], services: { '022': 'ssh' } }],
    ['a service port above 65535', { epoch: 0, ip: '198.18.0.1', tags: [], open: [], services: { '65536': 'x' } }],
    ['a non-string service name', { epoch: 0, ip: '198.18.0.1', tags: [], open: [], services: { '22': 1 } }],
    ['a bad probed word', { epoch: 0, ip: '198.18.0.1', tags: [], open: [], probed: 'all' }],
    ['a missing open list', { epoch: 0, ip: '198.18.0.1', tags: [] }],
  ])('%s is rejected by both the reader and the schema', (_name, line) => {
    expect(() => validateObservation(line, 'case', ALL)).toThrow(expect.objectContaining({ code: 'PB_ERR_RECORDING' }));
    expect(checkSchema(schema, line)).not.toEqual([]);
  });

  test.prop([recordingArbitrary], { numRuns: 40 })('lines the writer produces fit the schema', ({ header, observations: input }) => {
    const { format: _f, version: _v, ...rest } = header;
    expect(checkSchema(schema, JSON.parse(formatHeader(rest)))).toEqual([]);
    for (const obs of input) expect(checkSchema(schema, JSON.parse(formatObservation(obs)))).toEqual([]);
  });
});
