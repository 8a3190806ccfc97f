import { writeFileSync } from 'node:fs';
import { afterAll, describe, expect, test } from 'vitest';
import { isPortbanditError } from '../../src/core/errors.js';
import { loadRecording, recordingFromObservations } from '../../src/recording/index.js';
import { makeTempDir } from './helpers.js';

const tmp = makeTempDir();
afterAll(() => tmp.cleanup());

const H = '{"format":"portbandit.recording","version":1,"name":"t","probed":"1-1024"}';
const ok = (epoch: number, ip: string, open = '[22]') => `{"epoch":${epoch},"ip":"${ip}","tags":["dmz"],"open":${open}}`;

/** [case, file text, line named in the error, what the message must say] */
const cases: Array<[string, string, number, RegExp]> = [
  ['an empty file', '', 1, /expected a header line.*empty file/],
  ['a file of blank lines', '\n\n  \n', 1, /empty file/],
  ['a header that is not JSON', '{"format":', 1, /expected one JSON object per line/],
  ['a header that is an array', '[1,2]', 1, /expected a header object/],
  [
    'a wrong format name',
    '{"format":"natlas","version":1,"name":"t","probed":"1-10"}',
    1,
    /expected "format": "portbandit.recording".*got "natlas"/,
  ],
  ['an unknown version', '{"format":"portbandit.recording","version":2,"name":"t","probed":"1-10"}', 1, /expected "version": 1.*got 2/],
  [
    'a header without name',
    '{"format":"portbandit.recording","version":1,"probed":"1-10"}',
    1,
    /expected "name" to be a string.*got nothing/,
  ],
  ['a header without probed', '{"format":"portbandit.recording","version":1,"name":"t"}', 1, /expected "probed" to be a port-range string/],
  [
    'a header with a bad probed range',
    '{"format":"portbandit.recording","version":1,"name":"t","probed":"10-1"}',
    1,
    /invalid "probed".*start <= end/,
  ],
  [
    'a header with a port beyond 65535',
    '{"format":"portbandit.recording","version":1,"name":"t","probed":[22,70000]}',
    1,
    /invalid "probed".*70000/,
  ],
  [
    'a non-string description',
    '{"format":"portbandit.recording","version":1,"name":"t","probed":"1-10","description":5}',
    1,
    /expected "description" to be a string/,
  ],
  ['a header after blank lines, then bad JSON', `\n\n${H}\n{"epoch":0,`, 4, /expected one JSON object per line/],
  ['a truncated last line', `${H}\n${ok(0, '198.18.0.1')}\n{"epoch":0,"ip":"198.18.0.2","tags":["dmz"],"op`, 3, /truncated or malformed/],
  ['an observation that is a number', `${H}\n42`, 2, /expected an observation object/],
  ['a negative epoch', `${H}\n${ok(-1, '198.18.0.1')}`, 2, /expected "epoch" to be an integer from 0 to 1000000, got -1/],
  ['a fractional epoch', `${H}\n${ok(1.5, '198.18.0.1')}`, 2, /expected "epoch".*got 1.5/],
  ['a string epoch', `${H}\n{"epoch":"0","ip":"198.18.0.1","tags":[],"open":[]}`, 2, /expected "epoch".*got "0"/],
  ['an epoch too large to index', `${H}\n${ok(2000000, '198.18.0.1')}`, 2, /from 0 to 1000000, got 2000000/],
  ['a missing ip', `${H}\n{"epoch":0,"tags":[],"open":[]}`, 2, /expected "ip" to be an IPv4 or IPv6 address.*, got nothing/],
  ['a malformed ip', `${H}\n${ok(0, '198.18.0.256')}`, 2, /expected "ip".*got "198.18.0.256"/],
  [
    'tags that are not an array',
    `${H}\n{"epoch":0,"ip":"198.18.0.1","tags":"dmz","open":[]}`,
    2,
    /expected "tags" to be an array of strings/,
  ],
  ['a non-string tag', `${H}\n{"epoch":0,"ip":"198.18.0.1","tags":["a",7],"open":[]}`, 2, /non-empty strings, got 7 at tags\[1\]/],
  ['an empty tag', `${H}\n{"epoch":0,"ip":"198.18.0.1","tags":[""],"open":[]}`, 2, /non-empty strings, got "" at tags\[0\]/],
  ['a repeated tag', `${H}\n{"epoch":0,"ip":"198.18.0.1","tags":["a","a"],"open":[]}`, 2, /expected distinct tags, got "a" twice/],
  ['a missing open list', `${H}\n{"epoch":0,"ip":"198.18.0.1","tags":[]}`, 2, /expected "open" to be an array of ports, got nothing/],
  ['a port 0', `${H}\n${ok(0, '198.18.0.1', '[0]')}`, 2, /integer ports 1-65535, got 0 at open\[0\]/],
  ['a string port', `${H}\n${ok(0, '198.18.0.1', '[22,"80"]')}`, 2, /got "80" at open\[1\]/],
  [
    'an open port outside the header probed',
    `${H}\n${ok(0, '198.18.0.1', '[22,8080]')}`,
    2,
    /open port 8080 is outside the line's probed set \(the header's "probed": 1-1024\)/,
  ],
  [
    'an open port outside the line probed',
    `${H}\n{"epoch":0,"ip":"198.18.0.1","tags":[],"open":[443],"probed":"22,80"}`,
    2,
    /open port 443 is outside the line's probed set \(its "probed": 22,80\)/,
  ],
  ['a bad line probed', `${H}\n{"epoch":0,"ip":"198.18.0.1","tags":[],"open":[],"probed":"ssh"}`, 2, /invalid "probed".*"ssh"/],
  ['a duplicate open port', `${H}\n${ok(0, '198.18.0.1', '[80,22,80]')}`, 2, /expected distinct open ports, got 80 twice/],
  [
    'services that are a list',
    `${H}\n{"epoch":0,"ip":"198.18.0.1","tags":[],"open":[],"services":["ssh"]}`,
    2,
    /expected "services" to be an object/,
  ],
  [
    'a service key that is not a port',
    `${H}\n{"epoch":0,"ip":"198.18.0.1","tags":[],"open":[],"services":{"ssh":"22"}}`,
    2,
    /keys to be ports 1-65535.*got "ssh"/,
  ],
  ['a service port 70000', `${H}\n{"epoch":0,"ip":"198.18.0.1","tags":[],"open":[],"services":{"70000":"x"}}`, 2, /got "70000"/],
  [
    'a non-string service name',
    `${H}\n{"epoch":0,"ip":"198.18.0.1","tags":[],"open":[],"services":{"22":1}}`,
    2,
    /"services"."22" to be a service name string/,
  ],
  [
    'a duplicate (epoch, ip) in order',
    `${H}\n${ok(0, '198.18.0.1')}\n${ok(0, '198.18.0.2')}\n${ok(0, '198.18.0.1')}`,
    4,
    /duplicate observation: host 198.18.0.1 already has an observation in epoch 0/,
  ],
  [
    'a duplicate (epoch, ip) after a later epoch',
    `${H}\n${ok(0, '198.18.0.1')}\n${ok(1, '198.18.0.1')}\n${ok(2, '198.18.0.2')}\n\n${ok(0, '198.18.0.1')}`,
    6,
    /duplicate observation: host 198.18.0.1 already has an observation in epoch 0/,
  ],
];

describe('recording validation errors', () => {
  test.each(cases)('rejects %s with PB_ERR_RECORDING at the right line', async (_name, text, line, message) => {
    const path = tmp.file('bad.ndjson', text);
    const error = await loadRecording(path).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isPortbanditError(error, 'PB_ERR_RECORDING')).toBe(true);
    if (!isPortbanditError(error)) return;
    expect(error.where).toBe(`${path}:${line}`);
    expect(error.message).toMatch(message);
    expect(error.message.startsWith(`${path}:${line}: `)).toBe(true);
  });

  test('bytes that are not UTF-8 are rejected at their line, not silently replaced', async () => {
    const bad = Buffer.concat([
      Buffer.from(`${H}\n${ok(0, '198.18.0.1')}\n{"epoch":0,"ip":"198.18.0.2","tags":["`),
      Buffer.from([0xc3, 0x28]),
      Buffer.from('"],"open":[]}\n'),
    ]);
    const path = tmp.file('latin.ndjson', '');
    writeFileSync(path, bad);
    await expect(loadRecording(path)).rejects.toMatchObject({
      code: 'PB_ERR_RECORDING',
      where: `${path}:3`,
      message: expect.stringMatching(/expected UTF-8 text/),
    });
  });

  test('a directory is PB_ERR_IO naming the path', async () => {
    await expect(loadRecording(tmp.dir)).rejects.toMatchObject({ code: 'PB_ERR_IO', where: tmp.dir });
  });

  test('an unreadable file is PB_ERR_IO naming the path', async () => {
    const path = `${tmp.dir}/missing.ndjson`;
    await expect(loadRecording(path)).rejects.toMatchObject({ code: 'PB_ERR_IO', where: path });
  });

  test('in-memory observations are validated the same way, positioned as lines', () => {
    const header = { format: 'portbandit.recording', version: 1, name: 't', probed: '1-1024' };
    const run = () =>
      recordingFromObservations(header, [
        { epoch: 0, ip: '198.18.0.1', tags: [], open: [22] },
        { epoch: 0, ip: '198.18.0.1', tags: [], open: [2000] },
      ]);
    expect(run).toThrow(/^<memory>:3: open port 2000 is outside/);
    expect(() => recordingFromObservations({ ...header, version: 3 }, [])).toThrow(/^<memory>:1: expected "version": 1/);
  });

  test('unknown fields are ignored, CRLF line ends and a byte-order mark are accepted', async () => {
    const text = `\ufeff${H.replace('}', ',"x-tool":"acme"}')}\r\n{"epoch":0,"ip":"198.18.0.1","tags":[],"open":[22],"rtt":12,"banner":{"22":"SSH-2.0"}}\r\n`;
    const rec = await loadRecording(tmp.file('ok.ndjson', text));
    expect(rec.size).toBe(1);
    expect(rec.header).toEqual({ format: 'portbandit.recording', version: 1, name: 't', probed: '1-1024' });
    expect(Array.from(rec.openPorts)).toEqual([22]);
  });
});
