import { createSocket, type Socket } from 'node:dgram';
import { isIPv4 } from 'node:net';

/**
 * A tiny authoritative DNS server on 127.0.0.1 for tests: answers A and AAAA queries from a map
 * the test edits (name -> addresses), NXDOMAIN for unknown names, an empty answer for a known
 * name without addresses of the asked type. Counts the queries it answered.
 */
export interface TestDnsServer {
  readonly port: number;
  /** Lower-case name -> addresses (IPv4 answered as A, IPv6 as AAAA). */
  readonly records: Map<string, string[]>;
  readonly queries: string[];
  close(): Promise<void>;
}

export async function startDnsServer(records: Record<string, string[]> = {}): Promise<TestDnsServer> {
  const socket: Socket = createSocket('udp4');
  const map = new Map(Object.entries(records));
  const queries: string[] = [];
  socket.on('message', (msg, peer) => {
    const question = readQuestion(msg);
    if (!question) return;
    queries.push(`${question.name}/${question.type === 1 ? 'A' : question.type === 28 ? 'AAAA' : question.type}`);
    const known = map.get(question.name);
    const answers = (known ?? []).filter((ip) => (question.type === 1 ? isIPv4(ip) : question.type === 28 ? !isIPv4(ip) : false));
    const header = Buffer.alloc(12);
    header.writeUInt16BE(msg.readUInt16BE(0), 0); // id
    header.writeUInt16BE(0x8400 | (msg.readUInt16BE(2) & 0x0100) | (known === undefined ? 3 : 0), 2); // QR, AA, RD copied, NXDOMAIN
    header.writeUInt16BE(1, 4);
    header.writeUInt16BE(answers.length, 6);
    const records = answers.map((ip) => {
      const rdata = isIPv4(ip) ? Buffer.from(ip.split('.').map(Number)) : ipv6Bytes(ip);
      const rr = Buffer.alloc(12);
      rr.writeUInt16BE(0xc00c, 0); // the question's name
      rr.writeUInt16BE(question.type, 2);
      rr.writeUInt16BE(1, 4);
      rr.writeUInt32BE(60, 6);
      rr.writeUInt16BE(rdata.length, 10);
      return Buffer.concat([rr, rdata]);
    });
    socket.send(Buffer.concat([header, question.raw, ...records]), peer.port, peer.address);
  });
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  return {
    port: socket.address().port,
    records: map,
    queries,
    close: () => new Promise<void>((resolve) => socket.close(() => resolve())),
  };
}

function readQuestion(msg: Buffer): { name: string; type: number; raw: Buffer } | undefined {
  if (msg.length < 17 || msg.readUInt16BE(4) !== 1) return undefined;
  const labels: string[] = [];
  let at = 12;
  while (at < msg.length && msg[at] !== 0) {
    const len = msg[at]!;
    labels.push(msg.subarray(at + 1, at + 1 + len).toString('ascii'));
    at += 1 + len;
  }
  const end = at + 5;
  if (end > msg.length) return undefined;
  return { name: labels.join('.').toLowerCase(), type: msg.readUInt16BE(at + 1), raw: msg.subarray(12, end) };
}

function ipv6Bytes(ip: string): Buffer {
  const [head, tail] = ip.split('::') as [string, string | undefined];
  const parse = (part: string | undefined) => (part ? part.split(':').filter((g) => g !== '') : []);
  let groups = parse(head);
  if (tail !== undefined) {
    const back = parse(tail);
    groups = [...groups, ...Array<string>(8 - groups.length - back.length).fill('0'), ...back];
  }
  const out = Buffer.alloc(16);
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2));
  return out;
}
