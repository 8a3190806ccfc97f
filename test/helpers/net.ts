import { type Server, createServer } from 'node:net';

/** A loopback port nothing listens on right now. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Poll `check` every 100 ms until it holds or `ms` pass; returns the elapsed time. */
export async function within(ms: number, check: () => Promise<boolean>): Promise<number> {
  const started = Date.now();
  while (!(await check())) {
    if (Date.now() - started > ms) throw new Error(`not within ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return Date.now() - started;
}

/** `n` TCP listeners on 127.0.0.1 that accept and close at once (services a connect reaches); ports ascending. */
export async function listenLoopback(n: number): Promise<{ ports: number[]; close: () => Promise<void> }> {
  const servers: Server[] = [];
  for (let i = 0; i < n; i++) {
    const server = createServer((socket) => socket.destroy());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    servers.push(server);
  }
  return {
    ports: servers.map((s) => (s.address() as { port: number }).port).sort((a, b) => a - b),
    close: async () => void (await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))))),
  };
}
