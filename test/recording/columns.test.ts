import { afterAll, describe, expect, test } from 'vitest';
import { loadRecording, observationAt, openPortsAt } from '../../src/recording/index.js';
import { makeTempDir } from './helpers.js';

const tmp = makeTempDir();
afterAll(() => tmp.cleanup());

// Three epochs written out of order, a probed override, services, an epoch-1 gap for one host.
const FILE = [
  '{"format":"portbandit.recording","version":1,"name":"hand","probed":"1-1024","description":"hand-made"}',
  '{"epoch":1,"ip":"198.18.0.2","tags":["corp"],"open":[443,22]}',
  '{"epoch":0,"ip":"198.18.0.1","tags":["dmz","web"],"open":[22,80,443],"services":{"443":"https","22":"ssh"}}',
  '{"epoch":0,"ip":"198.18.0.2","tags":["corp"],"open":[]}',
  '',
  '{"epoch":2,"ip":"198.18.0.1","tags":["dmz","web"],"open":[8080],"probed":"1-65535"}',
  '{"epoch":0,"ip":"198.18.0.3","tags":[],"open":[139,445],"probed":[139,445]}',
  '{"epoch":2,"ip":"198.18.0.2","tags":["corp"],"open":[22]}',
  '{"epoch":1,"ip":"198.18.0.3","tags":[],"open":[445],"probed":"139,445"}',
].join('\n');

describe('a hand-made multi-epoch recording', () => {
  test('loads into exactly these columns', async () => {
    const rec = await loadRecording(tmp.file('hand.ndjson', FILE));

    expect(rec.header).toEqual({ format: 'portbandit.recording', version: 1, name: 'hand', probed: '1-1024', description: 'hand-made' });
    expect(rec.probed.toString()).toBe('1-1024');
    expect(rec.size).toBe(7);
    expect(rec.epochs).toBe(3);
    expect(rec.hostIp).toEqual(['198.18.0.2', '198.18.0.1', '198.18.0.3']);
    // Sorted order: epoch 0 lines (file lines 3, 4, 7), epoch 1 (2, 9), epoch 2 (6, 8).
    expect(Array.from(rec.obsEpoch)).toEqual([0, 0, 0, 1, 1, 2, 2]);
    expect(Array.from(rec.obsHost)).toEqual([1, 0, 2, 0, 2, 1, 0]);
    expect(rec.tagSets).toEqual([[], ['corp'], ['dmz', 'web']]);
    expect(Array.from(rec.obsTagSet)).toEqual([2, 1, 0, 1, 0, 2, 1]);
    // Interned in file order: 1-65535 (line 6) before 139,445 (line 7; line 9 spells it differently).
    expect(rec.probedSets.map(String)).toEqual(['1-1024', '1-65535', '139,445']);
    expect(Array.from(rec.obsProbed)).toEqual([0, 0, 2, 0, 2, 1, 0]);
    expect(Array.from(rec.openStart)).toEqual([0, 3, 3, 5, 7, 8, 9, 10]);
    expect(Array.from(rec.openPorts)).toEqual([22, 80, 443, 139, 445, 22, 443, 445, 8080, 22]);
    expect(Array.from(rec.epochStart)).toEqual([0, 3, 5, 7]);
    expect([...rec.services.keys()]).toEqual([0]);
    expect(rec.services.get(0)).toEqual(
      new Map([
        [443, 'https'],
        [22, 'ssh'],
      ]),
    );
    expect(Array.from(openPortsAt(rec, 5))).toEqual([8080]);
  });

  test('gives each observation back as an object', async () => {
    const rec = await loadRecording(tmp.file('hand.ndjson', FILE));
    expect(observationAt(rec, 0)).toEqual({
      epoch: 0,
      ip: '198.18.0.1',
      tags: ['dmz', 'web'],
      open: [22, 80, 443],
      services: { '22': 'ssh', '443': 'https' },
    });
    expect(observationAt(rec, 2)).toEqual({ epoch: 0, ip: '198.18.0.3', tags: [], open: [139, 445], probed: '139,445' });
    expect(observationAt(rec, 3)).toEqual({ epoch: 1, ip: '198.18.0.2', tags: ['corp'], open: [22, 443] });
    expect(() => observationAt(rec, 7)).toThrow(RangeError);
  });

  test('an epoch nobody was observed in is empty, not an error', async () => {
    const text = [
      '{"format":"portbandit.recording","version":1,"name":"gap","probed":"1-1024"}',
      '{"epoch":2,"ip":"198.18.0.9","tags":[],"open":[]}',
    ].join('\n');
    const rec = await loadRecording(tmp.file('gap.ndjson', text));
    expect(rec.epochs).toBe(3);
    expect(Array.from(rec.epochStart)).toEqual([0, 0, 0, 1]);
  });

  test('a header alone is an empty recording', async () => {
    const rec = await loadRecording(
      tmp.file('empty.ndjson', '{"format":"portbandit.recording","version":1,"name":"none","probed":"22"}\n'),
    );
    expect(rec.size).toBe(0);
    expect(rec.epochs).toBe(0);
    expect(Array.from(rec.epochStart)).toEqual([0]);
    expect(Array.from(rec.openStart)).toEqual([0]);
  });
});
