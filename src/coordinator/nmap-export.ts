import { PortRanges, VERSION, PortbanditError } from '../core/index.js';
import type { ScanDocument, ScannedPort, Store } from '../store/index.js';

/**
 * Characters XML 1.0 cannot hold at all (C0 controls other than tab/newline/CR, lone surrogates,
 * U+FFFE/U+FFFF): replaced by U+FFFD so that any stored banner still makes a well-formed file.
 */
const NOT_XML =
  // eslint-disable-next-line no-control-regex -- matching control characters is the point
  /[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/gu;

const ESCAPES: Readonly<Record<string, string>> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&apos;',
  '\n': '&#xa;',
  '\r': '&#xd;',
  '\t': '&#x9;',
};

/**
 * Escape text for an attribute value or element content, as nmap does (newlines as `&#xa;`);
 * spaces at either end become `&#x20;`, which readers that trim values (ours) keep.
 */
function esc(value: unknown): string {
  return String(value)
    .replace(NOT_XML, '\uFFFD')
    .replace(/[&<>"'\n\r\t]/g, (c) => ESCAPES[c]!)
    .replace(/^ +| +$/g, (spaces) => '&#x20;'.repeat(spaces.length));
}

function attrs(pairs: Record<string, unknown>): string {
  return Object.entries(pairs)
    .filter(([, v]) => v !== undefined && v !== '')
    .map(([k, v]) => ` ${k}="${esc(v)}"`)
    .join('');
}

/** NSE structured output back into nmap's `<elem>`/`<table>` form (the parser's inverse). */
function fieldsXml(value: unknown, key?: string): string {
  const k = key !== undefined ? attrs({ key }) : '';
  if (Array.isArray(value)) return `<table${k}>${value.map((v) => fieldsXml(v)).join('')}</table>`;
  if (value !== null && typeof value === 'object') {
    const inner = Object.entries(value as Record<string, unknown>)
      .map(([name, v]) => (name === 'items' && Array.isArray(v) ? v.map((item) => fieldsXml(item)).join('') : fieldsXml(v, name)))
      .join('');
    return `<table${k}>${inner}</table>`;
  }
  return `<elem${k}>${esc(value ?? '')}</elem>`;
}

function scriptXml(script: ScannedPort['scripts'][number]): string {
  const open = `<script${attrs({ id: script.id })} output="${esc(script.output)}"`;
  const fields = script.fields;
  if (fields === undefined || fields === null || typeof fields !== 'object') return `${open}/>`;
  // The top level of the fields is the script element itself: its entries, without a <table>.
  const inner = fieldsXml(fields).replace(/^<table>|<\/table>$/g, '');
  return inner === '' ? `${open}/>` : `${open}>${inner}</script>`;
}

function portXml(p: ScannedPort): string {
  const service = attrs({ name: p.service, product: p.product, version: p.version, extrainfo: p.extrainfo });
  const hasService = service !== '' || p.cpes.length > 0;
  const serviceXml = hasService
    ? `<service${service}${p.service !== undefined ? ' method="probed"' : ''}>${p.cpes.map((c) => `<cpe>${esc(c)}</cpe>`).join('')}</service>`
    : '';
  return `<port${attrs({ protocol: p.protocol ?? 'tcp', portid: p.port })}><state${attrs({ state: p.state, reason: 'portbandit' })}/>${serviceXml}${p.scripts.map(scriptXml).join('')}</port>`;
}

/** Text for an XML comment, which may not hold `--` nor end with `-`. */
function commentText(value: string): string {
  return value
    .replace(NOT_XML, '\uFFFD')
    .replace(/-(?=-)/g, '- ')
    .replace(/-$/, '- ');
}

function seconds(ms: number): number {
  return Math.floor(ms / 1000);
}

/**
 * One host visit as an `nmap -oX` report that nmap's tools and `portbandit import nmap` read:
 * `<scaninfo services>` is the visit's probed ports, each reported port is a `<port>`, and the
 * probed ports neither reported nor unknown are one `<extraports state="closed">` line (a
 * visit records only the ports it did not see closed or silent). A down host is `state="down"`.
 */
export function formatNmapXml(scan: ScanDocument): string {
  const probed = scan.probedPorts === '' ? PortRanges.EMPTY : PortRanges.parse(scan.probedPorts, 'probedPorts');
  const unknown =
    scan.unknownPorts !== undefined && scan.unknownPorts !== '' ? PortRanges.parse(scan.unknownPorts, 'unknownPorts').size : 0;
  const tcp = scan.ports.filter((p) => (p.protocol ?? 'tcp') === 'tcp');
  const unreported = Math.max(0, probed.size - tcp.length - unknown);
  const down = scan.host?.status === 'down';
  const reported = Array.isArray(scan.host?.hostnames)
    ? (scan.host.hostnames as unknown[]).filter((n): n is string => typeof n === 'string')
    : [];
  // The scope names the address was targeted by (issue 14.7) are hostnames too.
  const hostnames = [...new Set([...reported, ...(scan.names ?? [])])];
  const args = `portbandit export nmap --host ${scan.ip} --scan ${scan.scanId}`;
  const start = seconds(scan.startedAt);
  const end = seconds(scan.finishedAt);
  const lines = [
    '<?xml version="1.0" encoding="UTF-8"?>',
    '<!DOCTYPE nmaprun>',
    `<!-- ${commentText(`portbandit ${VERSION}: visit ${scan.scanId} of ${scan.ip}, cycle ${scan.cycle}, agent ${scan.agentId}, tags ${scan.tags.join(',') || '(none)'}${scan.incomplete !== undefined ? `, partial: ${scan.incomplete}` : ''}`)} -->`,
    `<nmaprun${attrs({ scanner: 'portbandit', args, start, startstr: new Date(scan.startedAt).toUTCString(), version: VERSION, xmloutputversion: '1.05' })}>`,
    `<scaninfo${attrs({ type: scan.preflight === 'masscan' ? 'syn' : 'connect', protocol: 'tcp', numservices: probed.size })} services="${esc(probed.toString())}"/>`,
    `<host${attrs({ starttime: start, endtime: end })}><status${attrs({ state: down ? 'down' : 'up', reason: 'portbandit' })}/>`,
    `<address${attrs({ addr: scan.ip, addrtype: scan.ip.includes(':') ? 'ipv6' : 'ipv4' })}/>`,
    `<hostnames>${hostnames.map((n) => `<hostname${attrs({ name: n, type: 'user' })}/>`).join('')}</hostnames>`,
    `<ports>${unreported > 0 ? `<extraports${attrs({ state: 'closed', count: unreported })}/>` : ''}`,
    ...tcp.map(portXml),
    '</ports>',
    '</host>',
    `<runstats><finished${attrs({ time: end, timestr: new Date(scan.finishedAt).toUTCString(), exit: 'success' })}/><hosts${attrs({ up: down ? 0 : 1, down: down ? 1 : 0, total: 1 })}/></runstats>`,
    '</nmaprun>',
    '',
  ];
  return lines.join('\n');
}

/** A host's scan by id (checked to be that host's), or its latest; PB_ERR_NOT_FOUND otherwise. */
export async function findHostScan(store: Store, ip: string, scanId?: string): Promise<ScanDocument> {
  if (scanId !== undefined) {
    const scan = await store.getScan(scanId);
    if (!scan || scan.ip !== ip)
      throw new PortbanditError('PB_ERR_NOT_FOUND', `no scan ${JSON.stringify(scanId)} of ${ip}`, { where: 'scan' });
    return scan;
  }
  const latest = await store.getLatestScan(ip);
  if (!latest) throw new PortbanditError('PB_ERR_NOT_FOUND', `${ip} has never been scanned`, { where: 'ip' });
  return latest;
}
