import type { Command } from 'commander';
import { cliIo } from '../io.js';
import { PortbanditError, errorCodes, type ErrorCode } from '../../core/index.js';
import { type RetentionReport } from '../../coordinator/index.js';
import { adminToken } from '../result-source.js';
import { withDataStore } from '../data-store.js';

interface Flags {
  dryRun?: boolean;
  data?: string;
  server?: string;
  tokenFile?: string;
  json?: boolean;
}

const progress = (r: RetentionReport) =>
  cliIo().stderr.write(`retention: ${r.hosts} hosts, ${r.visits} visits, ${r.dropped} ${r.dryRun ? 'to drop' : 'dropped'}\n`);

/** `portbandit retention [--dry-run]`: apply the policies' history retention now, or report what it would drop. */
export function registerRetention(program: Command): void {
  program
    .command('retention')
    .description(
      "Apply the policies' history retention now (the coordinator also does it in the background), or --dry-run: report what would be kept and dropped.",
    )
    .option('--dry-run', 'report only; delete nothing')
    .option('--data <dir>', 'data directory (env PORTBANDIT_DATA; default ./data)')
    .option('--server <url>', "a running coordinator's URL instead of a data directory (env PORTBANDIT_SERVER)")
    .option('--token-file <file>', 'admin token file for --server (default $PORTBANDIT_ADMIN_TOKEN)')
    .option('--json', 'print the report as JSON')
    .action(async (flags: Flags) => {
      const dryRun = Boolean(flags.dryRun);
      const report = await runRetention(flags, dryRun);
      if (flags.json) {
        cliIo().stdout.write(JSON.stringify(report) + '\n');
        return;
      }
      const verb = dryRun ? 'would drop' : 'dropped';
      cliIo().stdout.write(
        `${report.hosts} hosts, ${report.visits} visits: kept ${report.kept} (${report.protectedVisits} referenced by events or leases), ${verb} ${report.dropped}\n`,
      );
      for (const p of report.byPolicy) cliIo().stdout.write(`policy ${p.tag || '_default'}\tkept ${p.kept}\t${verb} ${p.dropped}\n`);
      for (const s of report.sample)
        cliIo().stdout.write(`${verb}\t${s.scanId}\t${s.ip}\t${new Date(s.finishedAt).toISOString()}\t${s.tags.join(',')}\n`);
    });
}

async function runRetention(flags: Flags, dryRun: boolean): Promise<RetentionReport> {
  if (flags.server !== undefined && flags.data !== undefined)
    throw new PortbanditError('PB_ERR_FLAG_CONFLICT', 'give either --server or --data, not both', { where: '--server' });
  const server = flags.server ?? (flags.data === undefined ? cliIo().env.PORTBANDIT_SERVER : undefined);
  if (server === undefined || server === '') {
    return withDataStore(flags.data, (app) => app.retention.run({ dryRun, onProgress: progress }));
  }
  let url: URL;
  try {
    url = new URL(dryRun ? '/api/v1/admin/retention' : '/api/v1/admin/retention/run', server);
  } catch {
    throw new PortbanditError('PB_ERR_URL', `expected the coordinator's URL (http://host:port), got ${JSON.stringify(server)}`, {
      where: '--server',
    });
  }
  const token = adminToken(flags.tokenFile);
  cliIo().stderr.write(`retention: ${dryRun ? 'dry run' : 'pass'} on ${url.origin}...\n`);
  let res: Response;
  try {
    res = await fetch(url, { method: dryRun ? 'GET' : 'POST', headers: { authorization: `Bearer ${token}` } });
  } catch (cause) {
    throw new PortbanditError('PB_ERR_IO', `cannot reach the coordinator: ${(cause as Error).message}`, { where: url.origin, cause });
  }
  const json = (await res.json().catch(() => ({}))) as RetentionReport & { code?: string; message?: string };
  if (!res.ok)
    throw new PortbanditError(
      (json.code !== undefined && json.code in errorCodes ? json.code : 'PB_ERR_INTERNAL') as ErrorCode,
      json.message ?? `HTTP ${res.status}`,
      { where: `${url.origin}${url.pathname}` },
    );
  return json;
}
