import { type IncomingMessage, type Server, type ServerResponse, createServer, request as httpRequest } from 'node:http';
import { type Socket, connect } from 'node:net';
import type { Duplex } from 'node:stream';
import type { AllowList } from './allow-list.js';

/** One connection the browser asked the guard for, and whether it was let through. */
export interface GuardEntry {
  readonly at: number;
  /** `host:port` the browser wanted (IPv6 in brackets). */
  readonly target: string;
  readonly method: string;
  readonly allowed: boolean;
}

/** Entries kept in `log` (oldest dropped first). */
const LOG_LIMIT = 1000;

/** Split `host:port` / `[v6]:port` into a host (no brackets) and a port, or undefined. */
export function splitHostPort(text: string): { host: string; port: number } | undefined {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):(\d{1,5})$/u.exec(text);
  if (!m) return undefined;
  const port = Number(m[3]);
  if (port < 1 || port > 65535) return undefined;
  return { host: (m[1] ?? m[2])!, port };
}

/**
 * The browser's only way out: Chromium runs with this local HTTP proxy as its proxy for every
 * destination (loopback included), and the proxy connects only to a `host:port` that a capture in
 * progress has opened (`open`), which must also be inside the agent's --allow ranges. Anything
 * else (another host, another port, a name to resolve) is answered 403 and never dialled.
 *
 * Route interception in the page (agent/screenshots.ts) refuses other origins first; the guard
 * also covers what interception cannot see: preconnects, WebSockets, prefetches, a service
 * worker. The browser resolves no names itself (it hands them to the proxy, which refuses them).
 */
export class ScreenshotGuard {
  readonly log: GuardEntry[] = [];
  private readonly open = new Map<string, number>();
  private readonly sockets = new Set<Duplex>();
  private server: Server | undefined;
  private url: string | undefined;

  constructor(private readonly allow: AllowList) {}

  /** Listen on 127.0.0.1 (an ephemeral port); resolves with the proxy URL. */
  async start(): Promise<string> {
    if (this.url) return this.url;
    const server = createServer((req, res) => this.forward(req, res));
    server.on('connect', (req: IncomingMessage, socket: Duplex, head: Buffer) => this.tunnel(req, socket, head));
    // A WebSocket upgrade sent to the proxy itself (not through CONNECT): never forwarded.
    server.on('upgrade', (req: IncomingMessage, socket: Duplex) => {
      // Handed over by the HTTP server with no 'error' listener: a reset would be uncaught.
      socket.on('error', () => socket.destroy());
      this.record(req.url ?? '', 'UPGRADE', false);
      socket.destroy();
    });
    server.on('connection', (socket: Socket) => {
      this.sockets.add(socket);
      socket.once('close', () => this.sockets.delete(socket));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    this.server = server;
    const address = server.address();
    this.url = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
    return this.url;
  }

  /** Let connections to `ip:port` through until the returned function is called. */
  permit(ip: string, port: number): () => void {
    const key = keyOf(ip, port);
    this.open.set(key, (this.open.get(key) ?? 0) + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const n = (this.open.get(key) ?? 1) - 1;
      if (n <= 0) this.open.delete(key);
      else this.open.set(key, n);
    };
  }

  /** Whether a connection to `host:port` may be made now. */
  allows(host: string, port: number): boolean {
    return this.open.has(keyOf(host, port)) && this.allow.allows(host);
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    this.server = undefined;
    this.url = undefined;
  }

  private record(target: string, method: string, allowed: boolean): void {
    this.log.push({ at: Date.now(), target: target.slice(0, 300), method, allowed });
    if (this.log.length > LOG_LIMIT) this.log.splice(0, this.log.length - LOG_LIMIT);
  }

  /** CONNECT host:port (https, wss): a raw tunnel, only to an open target. */
  private tunnel(req: IncomingMessage, client: Duplex, head: Buffer): void {
    // The HTTP server hands the socket over with no 'error' listener: a client that resets it
    // (Chromium does, after a 403 to its own background requests) would crash the agent with an
    // uncaught ECONNRESET (seen once in CI, right after the agent said it had stopped).
    client.on('error', () => client.destroy());
    const target = splitHostPort(req.url ?? '');
    const allowed = target !== undefined && this.allows(target.host, target.port);
    this.record(req.url ?? '', 'CONNECT', allowed);
    if (!allowed) {
      client.end('HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
      return;
    }
    const upstream = connect({ host: target.host, port: target.port });
    this.sockets.add(upstream);
    upstream.once('close', () => this.sockets.delete(upstream));
    upstream.once('connect', () => {
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.length > 0) upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
    });
    upstream.on('error', () => client.destroy());
    client.on('error', () => upstream.destroy());
    client.once('close', () => upstream.destroy());
  }

  /** A plain-http request in absolute form (`GET http://host:port/path`): forwarded only to an open target. */
  private forward(req: IncomingMessage, res: ServerResponse): void {
    let url: URL | undefined;
    try {
      url = new URL(req.url ?? '');
    } catch {
      url = undefined;
    }
    const host = url?.hostname.replace(/^\[(.*)\]$/u, '$1');
    const port = url ? Number(url.port || (url.protocol === 'https:' ? 443 : 80)) : 0;
    const allowed = url !== undefined && url.protocol === 'http:' && host !== undefined && this.allows(host, port);
    this.record(url ? `${url.hostname}:${port}` : (req.url ?? ''), req.method ?? 'GET', allowed);
    if (!allowed) {
      res.writeHead(403, { 'content-type': 'text/plain', connection: 'close' }).end('refused by the portbandit screenshot guard\n');
      return;
    }
    const headers = { ...req.headers };
    delete headers['proxy-connection'];
    delete headers['proxy-authorization'];
    const upstream = httpRequest({ host, port, method: req.method, path: `${url!.pathname}${url!.search}`, headers }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    upstream.on('error', () => {
      if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' });
      res.end();
    });
    req.pipe(upstream);
  }
}

function keyOf(host: string, port: number): string {
  return `${host.toLowerCase()}|${port}`;
}
