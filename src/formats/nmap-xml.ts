import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { formatIp, tryParseIp, PortbanditError } from '../core/index.js';
import type { PortResult, PortStateText, ScriptOutput } from '../protocol/index.js';

/** One host of an nmap XML report. */
export interface NmapHost {
  readonly ip: string;
  /** nmap's host status: up, down, unknown, skipped. */
  readonly status: string;
  readonly startedAt: number | null;
  readonly finishedAt: number | null;
  readonly hostnames: readonly string[];
  /** Every port nmap reported on, in nmap's order (all states). */
  readonly ports: readonly PortResult[];
  /**
   * nmap gave up on the host at --host-timeout (`<host timedout="true">`): it then reports no
   * ports at all, which says nothing about them.
   */
  readonly timedOut: boolean;
}

/** A parsed `nmap -oX` report. */
export interface NmapRun {
  readonly args: string;
  readonly version: string;
  /** Seconds since the epoch, from <nmaprun start>. */
  readonly startedAt: number | null;
  readonly finishedAt: number | null;
  /** The TCP ports the scan covered (<scaninfo services>), e.g. "1-1000,8080", or null. */
  readonly probed: string | null;
  readonly hosts: readonly NmapHost[];
  /** False when <runstats> is missing: nmap was killed or the file is cut short. */
  readonly complete: boolean;
}

const arrays = new Set(['host', 'port', 'cpe', 'script', 'elem', 'table', 'hostname', 'address', 'scaninfo', 'extraports', 'extrareasons']);

const parser = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: '',
  textNodeName: '#text',
  parseAttributeValue: false,
  parseTagValue: false,
  trimValues: true,
  processEntities: true,
  // nmap writes character references (`&#xa;` in script output, `&#45;` in PEM dashes): decode them.
  htmlEntities: true,
  isArray: (name) => arrays.has(name),
});

type Node = Record<string, unknown>;
const portStates = new Set<PortStateText>(['open', 'closed', 'filtered', 'open|filtered', 'closed|filtered', 'unfiltered']);

function asNodes(value: unknown): Node[] {
  return Array.isArray(value) ? (value as Node[]) : value && typeof value === 'object' ? [value as Node] : [];
}

function str(value: unknown): string | undefined {
  return typeof value === 'string' && value !== '' ? value : undefined;
}

function num(value: unknown): number | null {
  const n = typeof value === 'string' ? Number(value) : NaN;
  return Number.isFinite(n) ? n : null;
}

/** NSE structured output (<table>/<elem>) as plain JSON: keyed entries become object fields, the rest arrays. */
function scriptFields(node: Node): unknown {
  const elems = asNodes(node.elem);
  const tables = asNodes(node.table);
  const keyed: Record<string, unknown> = {};
  const list: unknown[] = [];
  for (const e of elems) {
    const text = typeof e === 'string' ? e : (str((e as Node)['#text']) ?? '');
    const key = typeof e === 'object' ? str((e as Node).key) : undefined;
    if (key) keyed[key] = text;
    else list.push(text);
  }
  for (const t of tables) {
    const key = str(t.key);
    if (key) keyed[key] = scriptFields(t);
    else list.push(scriptFields(t));
  }
  if (list.length === 0) return keyed;
  if (Object.keys(keyed).length === 0) return list;
  return { ...keyed, items: list };
}

/** An unrecognised service's fingerprint (`servicefp`) with an HTTP status line answering an HTTP probe. */
const HTTP_FINGERPRINT = /%r\((?:GetRequest|HTTPOptions|FourOhFourRequest),[0-9A-Fa-f]+,(?:"|&quot;)HTTP\/1\\\.[01]\\x20[1-5]\d\d/u;

function parsePort(node: Node, where: string): PortResult | null {
  if (node.protocol !== 'tcp') return null;
  const port = Number(node.portid);
  const state = str((asNodes(node.state)[0] ?? {}).state) as PortStateText | undefined;
  if (!Number.isInteger(port) || port < 1 || port > 65535 || !state || !portStates.has(state)) {
    throw new PortbanditError(
      'PB_ERR_SCANNER',
      `expected <port portid="1-65535"> with a <state>, got portid=${JSON.stringify(node.portid)} state=${JSON.stringify(state)}`,
      { where },
    );
  }
  const service = asNodes(node.service)[0];
  const scripts: ScriptOutput[] = asNodes(node.script).map((s) => {
    const fields = scriptFields(s);
    const hasFields = Array.isArray(fields) ? fields.length > 0 : Object.keys(fields as object).length > 0;
    return { id: String(s.id ?? ''), output: String(s.output ?? ''), ...(hasFields ? { fields } : {}) };
  });
  const cpes = service
    ? asNodes(service.cpe)
        .map((c) => (typeof c === 'string' ? c : String((c as Node)['#text'] ?? '')))
        .filter(Boolean)
    : [];
  return {
    port,
    protocol: 'tcp',
    state,
    ...(service && str(service.name) ? { service: str(service.name)! } : {}),
    ...(service && str(service.product) ? { product: str(service.product)! } : {}),
    ...(service && str(service.version) ? { version: str(service.version)! } : {}),
    ...(service && str(service.extrainfo) ? { extrainfo: str(service.extrainfo)! } : {}),
    ...(cpes.length > 0 ? { cpes } : {}),
    ...(scripts.length > 0 ? { scripts } : {}),
    ...(service && str(service.tunnel) === 'ssl' ? { tunnel: 'ssl' as const } : {}),
    // Not named by a probe: no name, `unknown`, or (method="table") the port's name in
    // nmap-services, which a random port has as often as not ("secrmmsafecopya" for 38865).
    ...(service &&
    (!str(service.name) || str(service.name) === 'unknown' || str(service.method) === 'table') &&
    HTTP_FINGERPRINT.test(str(service.servicefp) ?? '')
      ? { answersHttp: true as const }
      : {}),
  };
}

/**
 * Parse nmap's XML output (`-oX`). Throws PB_ERR_SCANNER naming `source`, the line and column
 * for XML that is not well-formed (a truncated file included), and the element for bad values.
 */
export function parseNmapXml(xml: string, source = 'nmap XML'): NmapRun {
  const valid = XMLValidator.validate(xml);
  if (valid !== true) {
    const { line, col, msg } = valid.err;
    throw new PortbanditError('PB_ERR_SCANNER', `malformed nmap XML: ${msg}`, { where: `${source}:${line}:${col}` });
  }
  // The parser trims attribute values; an address must be exact text (src/core/address.ts), so
  // a padded `addr` is refused here rather than silently trimmed.
  for (const m of xml.matchAll(/\saddr\s*=\s*(["'])([^"']*)\1/g)) {
    if (m[2] !== m[2]!.trim()) {
      const line = xml.slice(0, m.index).split('\n').length;
      throw new PortbanditError(
        'PB_ERR_SCANNER',
        `expected an address without surrounding whitespace, got addr=${JSON.stringify(m[2]!.slice(0, 80))}`,
        { where: `${source}:${line}` },
      );
    }
  }
  let doc: Node;
  try {
    doc = parser.parse(xml) as Node;
  } catch (cause) {
    // The validator and the parser disagree on some broken input (an unclosed <?pi?>, say).
    throw new PortbanditError('PB_ERR_SCANNER', `malformed nmap XML: ${(cause as Error).message}`, { where: source, cause });
  }
  const run = asNodes(doc.nmaprun)[0];
  if (!run) throw new PortbanditError('PB_ERR_SCANNER', 'expected an <nmaprun> root element', { where: source });
  const scaninfo = asNodes(run.scaninfo).find((s) => s.protocol === 'tcp');
  const runstats = asNodes(run.runstats)[0];
  const finished = runstats ? asNodes(runstats.finished)[0] : undefined;
  const hosts: NmapHost[] = asNodes(run.host).map((h, i) => {
    const where = `${source}: host ${i + 1}`;
    const addresses = asNodes(h.address);
    const address = addresses.find((a) => a.addrtype === 'ipv4' || a.addrtype === 'ipv6');
    if (!address || !str(address.addr))
      throw new PortbanditError('PB_ERR_SCANNER', 'expected an <address addrtype="ipv4|ipv6">', { where });
    const parsed = tryParseIp(address.addr);
    if (!parsed)
      throw new PortbanditError(
        'PB_ERR_SCANNER',
        `expected an IPv4 or IPv6 address in <address addr>, got ${JSON.stringify(String(address.addr).slice(0, 80))}`,
        { where },
      );
    const ip = formatIp(parsed.family, parsed.value);
    const portsNode = asNodes(h.ports)[0];
    const ports = portsNode
      ? asNodes(portsNode.port)
          .map((p, j) => parsePort(p, `${where} (${ip}), port ${j + 1}`))
          .filter((p): p is PortResult => p !== null)
      : [];
    const hostnames = asNodes(asNodes(h.hostnames)[0]?.hostname)
      .map((n) => String(n.name ?? ''))
      .filter(Boolean);
    return {
      ip,
      status: String(asNodes(h.status)[0]?.state ?? 'unknown'),
      startedAt: num(h.starttime),
      finishedAt: num(h.endtime),
      hostnames,
      ports,
      timedOut: String(h.timedout ?? '') === 'true',
    };
  });
  return {
    args: String(run.args ?? ''),
    version: String(run.version ?? ''),
    startedAt: num(run.start),
    finishedAt: finished ? num(finished.time) : null,
    probed: scaninfo && str(scaninfo.services) ? String(scaninfo.services) : null,
    hosts,
    complete: finished !== undefined,
  };
}
