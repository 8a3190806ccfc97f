import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../src/coordinator/app.js';
import { type ConfigInput, resolveConfig } from '../../src/coordinator/config.js';
import { hostsFileResolver } from '../../src/coordinator/names.js';
import type { ResultSubmission } from '../../src/protocol/protocol.js';
import { bearer, getWork, manualClock, resultFor, submit, tempDataDir, tokens } from '../coordinator/helpers.js';

/**
 * The names the fixture's resolver knows (an /etc/hosts-style file in the data directory, read
 * again at each resolution): web.lab.example is one scanned host and one address outside the scope.
 */
export const LAB_HOSTS = '# lab names\n198.18.10.1 web.lab.example\n198.18.10.9 web.lab.example\n198.18.10.2 db.lab.example\n';

/** A banner an attacker controls: the UI must print it as text. */
export const HOSTILE_PRODUCT = '<script>alert("pwned")</script>';

/** A coordinator over a real SQLite file with three hosts scanned twice (a change on .2). */
export interface UiFixture {
  readonly app: FastifyInstance;
  readonly admin: string;
  readonly agent: string;
  readonly clock: ReturnType<typeof manualClock>;
  /** The resolver's hosts file (rewrite it to change what names resolve to). */
  readonly hostsFile: string;
  close(): Promise<void>;
}

const SSL_CERT = {
  id: 'ssl-cert',
  output: 'Subject: commonName=web.lab.example\nNot valid after:  2027-01-01T00:00:00',
  fields: {
    subject: { commonName: 'web.lab.example', organizationName: 'Lab <Org>' },
    validity: { notBefore: '2026-01-01T00:00:00', notAfter: '2027-01-01T00:00:00' },
    sig_algo: 'sha256WithRSAEncryption',
  },
};

/** Build the app and ingest scans through the agent API (default policy: fixed 22/80/443/8080; dmz: thompson). */
export async function openUiFixture(flags: ConfigInput = {}): Promise<UiFixture> {
  const data = tempDataDir();
  const clock = manualClock();
  const hostsFile = join(data.dir, 'hosts');
  writeFileSync(hostsFile, LAB_HOSTS);
  // As test/coordinator/helpers.ts's openApp, with a resolver of the scope's DNS names.
  const config = resolveConfig({ flags: { dataDir: data.dir, logLevel: 'silent', learnBatchSize: 4, ...flags }, env: {} });
  const app = await buildApp({ config, now: clock.now, sweepTimer: false, resolver: hostsFileResolver(hostsFile) });
  const t = await tokens(app);
  const admin = t.admin;
  const agent = t.agents[0]!;
  const put = (method: 'PUT', url: string, payload: unknown, type = 'application/json') =>
    app.inject({ method, url, headers: { ...bearer(admin), 'content-type': type }, payload: payload as string });
  await put('PUT', '/api/v1/admin/scope/import', '198.18.10.0/31,dmz\n198.18.10.2,db\n', 'text/plain');
  await app.inject({
    method: 'PUT',
    url: '/api/v1/admin/policies/_default',
    headers: bearer(admin),
    payload: { strategy: 'fixed', budget: 10, params: { ports: [22, 80, 443, 8080] } },
  });
  // The dmz tag learns (its must-have ports keep the answers below inside every work item).
  await app.inject({
    method: 'PUT',
    url: '/api/v1/admin/policies/dmz',
    headers: bearer(admin),
    payload: { strategy: 'thompson', budget: 8, mustHave: [22, 80, 443, 8080] },
  });

  async function scanAll(answer: (ip: string) => ResultSubmission['ports']): Promise<void> {
    for (let i = 0; i < 3; i++) {
      const w = await getWork(app, agent);
      if (!w) throw new Error('no work');
      clock.advance(60_000);
      const res = await submit(app, agent, { ...resultFor(w, [], clock.now()), ports: answer(w.ip) });
      if (res.statusCode !== 200) throw new Error(`submit failed: ${res.statusCode} ${res.body}`);
    }
  }
  await scanAll((ip) => [
    { port: 22, state: 'open', service: 'ssh', product: 'OpenSSH', version: '9.6', cpes: ['cpe:/a:openbsd:openssh:9.6'] },
    ...(ip === '198.18.10.2'
      ? [{ port: 443, state: 'open' as const, service: 'https', product: 'nginx', version: '1.25', cpes: [], scripts: [SSL_CERT] }]
      : []),
  ]);
  await app.inject({ method: 'POST', url: '/api/v1/admin/cycle/restart', headers: bearer(admin) });
  await scanAll((ip) => [
    { port: 22, state: 'open', service: 'ssh', product: 'OpenSSH', version: '9.7', cpes: ['cpe:/a:openbsd:openssh:9.7'] },
    ...(ip === '198.18.10.2'
      ? [
          { port: 443, state: 'closed' as const },
          {
            port: 8080,
            state: 'open' as const,
            service: 'https-alt',
            product: 'Jetty',
            version: '12.0',
            cpes: ['cpe:/a:eclipse:jetty:12.0'],
            scripts: [SSL_CERT],
          },
        ]
      : [
          {
            port: 80,
            state: 'open' as const,
            service: 'http',
            product: HOSTILE_PRODUCT,
            scripts: [{ id: 'http-title', output: '<img src=x onerror=alert(1)>' }],
          },
        ]),
  ]);
  return {
    app,
    admin,
    agent,
    clock,
    hostsFile,
    close: async () => {
      await app.close();
      data.cleanup();
    },
  };
}
