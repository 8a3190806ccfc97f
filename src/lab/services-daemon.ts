/**
 * Runs inside a lab host's network namespace (`ip netns exec pb-lab-N node services-daemon.js
 * SPEC`) and serves banners on the given ports until killed. SPEC is JSON: [{port, kind}, ...].
 * It speaks just enough of each protocol for nmap's service detection.
 */
import { createServer, type Socket } from 'node:net';
import type { LabService } from './services.js';

const banners = {
  ssh: 'SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n',
  smtp: '220 mail.lab.example ESMTP Postfix (Debian/GNU)\r\n',
  ftp: '220 (vsFTPd 3.0.3)\r\n',
};

function serve(socket: Socket, service: LabService): void {
  socket.setTimeout(10_000, () => socket.destroy());
  socket.on('error', () => socket.destroy());
  switch (service.kind) {
    case 'ssh':
    case 'smtp':
    case 'ftp':
      socket.write(banners[service.kind]);
      socket.on('data', (data) => {
        const text = data.toString('latin1');
        if (service.kind === 'smtp' && /^(EHLO|HELO)/i.test(text)) socket.write('250-mail.lab.example\r\n250 SIZE 10240000\r\n');
        else if (service.kind === 'smtp' && /^QUIT/i.test(text)) socket.end('221 2.0.0 Bye\r\n');
        else if (service.kind === 'ftp' && /^USER/i.test(text)) socket.write('331 Please specify the password.\r\n');
        else if (service.kind === 'ftp') socket.write('530 Please login with USER and PASS.\r\n');
      });
      break;
    case 'redis':
      socket.on('data', (data) => {
        const text = data.toString('latin1');
        if (/PING/i.test(text)) socket.write('+PONG\r\n');
        else if (/INFO/i.test(text)) {
          const body = '# Server\r\nredis_version:7.0.15\r\nredis_mode:standalone\r\nos:Linux\r\n';
          socket.write(`$${body.length}\r\n${body}\r\n`);
        } else socket.write('-ERR unknown command\r\n');
      });
      break;
    case 'http':
      socket.on('data', () => {
        const body = `<html><head><title>lab ${service.port}</title></head><body>portbandit lab</body></html>`;
        socket.end(
          `HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nContent-Type: text/html\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`,
        );
      });
      break;
    case 'silent':
      break;
  }
}

const spec = JSON.parse(process.argv[2] ?? '[]') as LabService[];
let listening = 0;
for (const service of spec) {
  const server = createServer((socket) => serve(socket, service));
  server.on('error', (error) => {
    process.stderr.write(`lab services: port ${service.port}: ${error.message}\n`);
    process.exit(1);
  });
  server.listen({ port: service.port, host: '0.0.0.0', backlog: 512 }, () => {
    if (++listening === spec.length) process.stdout.write('ready\n');
  });
}
if (spec.length === 0) {
  // A host that serves nothing still has its daemon until the lab is taken down (an empty event
  // loop would exit at once, racing the parent's read of "ready").
  setInterval(() => {}, 1 << 30);
  process.stdout.write('ready\n');
}
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
