import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import { Agent, AllowList, DETECTION_DEFAULTS, SCAN_DEFAULTS, type PreflightChoice, describeMissingTools, detectScannerTools } from '../../../agent/index.js';
import { PortbanditError } from '../../core/errors.js';
import { collect, parseInteger } from '../options.js';

interface AgentFlags {
  server: string;
  token?: string;
  concurrency: number;
  allow: string[];
  preflight: PreflightChoice;
  scriptsAllow: string[];
  once?: boolean;
  rate: number;
  retries: number;
  wait: number;
  connectConcurrency: number;
  connectTimeout: number;
  pseudoThreshold: number;
  nmapParallel: number;
  masscanAdapter?: string;
  masscanAdapterIp?: string;
  masscanRouter?: string;
}

const log = (line: string) => process.stderr.write(`${new Date().toISOString()} ${line}\n`);

function parsePreflight(value: string): PreflightChoice {
  if (value === 'auto' || value === 'masscan' || value === 'connect') return value;
  throw new InvalidArgumentError(`expected auto, masscan or connect, got "${value}".`);
}

function collectList(value: string, previous: string[] = []): string[] {
  return [...previous, ...value.split(',').map((s) => s.trim()).filter(Boolean)];
}

/** `portbandit agent`: pull work from a coordinator, scan it (preflight + nmap), submit results. */
export function registerAgent(program: Command): void {
  program
    .command('agent')
    .description('Scanning agent: pull work from a coordinator, preflight (masscan or a TCP connect sweep), nmap -sV on the open ports, submit.')
    .requiredOption('--server <url>', 'coordinator URL, e.g. http://127.0.0.1:8080')
    .option('--token <token>', 'agent token (portbandit token create --agent NAME); default $PORTBANDIT_AGENT_TOKEN')
    .option('--concurrency <n>', 'work items leased and scanned together per batch', parseInteger(1, 1024), 8)
    .option('--allow <cidr>', 'scan only targets in this range (repeatable; default: nothing is allowed)', collect, [])
    .option('--preflight <kind>', 'auto (masscan when root + installed + routed, else connect), masscan or connect', parsePreflight, 'auto')
    .option('--scripts-allow <names>', 'NSE scripts this agent will run (comma-separated, repeatable)', collectList, [])
    .option('--once', 'scan one batch (or none when there is no work) and exit')
    .option('--rate <pps>', 'masscan packets per second', parseInteger(1, 1_000_000), SCAN_DEFAULTS.masscan.rate)
    .option('--retries <n>', 'masscan/connect-sweep retries', parseInteger(0, 10), SCAN_DEFAULTS.masscan.retries)
    .option('--wait <s>', 'masscan --wait seconds', parseInteger(0, 60), SCAN_DEFAULTS.masscan.waitSeconds)
    .option('--connect-concurrency <n>', 'connect sweep: connections in flight', parseInteger(1, 10_000), SCAN_DEFAULTS.connect.concurrency)
    .option('--connect-timeout <ms>', 'connect sweep: per-port timeout', parseInteger(50, 60_000), SCAN_DEFAULTS.connect.timeoutMs)
    .option('--pseudo-threshold <n>', 'hosts open on more ports than this skip nmap (pseudo-services)', parseInteger(1, 65535), SCAN_DEFAULTS.pseudoServiceThreshold)
    .option('--nmap-parallel <n>', 'nmap -sV processes at once (one per distinct open-port set, up to 16 hosts each)', parseInteger(1, 64), DETECTION_DEFAULTS.parallel)
    .option('--masscan-adapter <if>', 'masscan --adapter (default: from ip route get)')
    .option('--masscan-adapter-ip <ip>', 'masscan --adapter-ip')
    .option('--masscan-router <ip>', 'masscan --router-ip')
    .action(async (flags: AgentFlags) => {
      const token = flags.token ?? process.env.PORTBANDIT_AGENT_TOKEN;
      if (!token) throw new PortbanditError('PB_ERR_INVALID_ARGUMENT', 'an agent token is required (--token or $PORTBANDIT_AGENT_TOKEN)', { where: '--token' });
      const allow = AllowList.parse(flags.allow);
      if (flags.allow.length === 0) log('agent: no --allow ranges: every work item will be refused');
      const explicit = [flags.masscanAdapter, flags.masscanAdapterIp, flags.masscanRouter];
      if (explicit.some(Boolean) && !explicit.every(Boolean)) {
        throw new PortbanditError('PB_ERR_INVALID_ARGUMENT', 'give all three of --masscan-adapter, --masscan-adapter-ip and --masscan-router, or none', { where: '--masscan-adapter' });
      }
      const tools = await detectScannerTools();
      for (const line of describeMissingTools(tools)) log(`agent: ${line}`);
      if (flags.preflight === 'masscan' && (!tools.masscan || !tools.rawSockets)) {
        throw new PortbanditError('PB_ERR_SCANNER', 'masscan preflight requested but masscan is missing or this process lacks raw sockets (apt-get install nmap masscan; run as root or with CAP_NET_RAW)', { where: '--preflight' });
      }
      const agent = new Agent({
        server: flags.server,
        token,
        concurrency: flags.concurrency,
        once: Boolean(flags.once),
        scan: {
          allow,
          scriptsAllow: new Set(flags.scriptsAllow),
          preflight: flags.preflight,
          tools,
          masscan: {
            rate: flags.rate,
            retries: flags.retries,
            waitSeconds: flags.wait,
            ...(flags.masscanAdapter ? { route: { adapter: flags.masscanAdapter, adapterIp: flags.masscanAdapterIp!, routerIp: flags.masscanRouter! } } : {}),
          },
          connect: { concurrency: flags.connectConcurrency, timeoutMs: flags.connectTimeout, retries: flags.retries },
          pseudoServiceThreshold: flags.pseudoThreshold,
          nmapParallel: flags.nmapParallel,
          log,
        },
      });
      let signals = 0;
      const onSignal = (signal: string) => {
        signals++;
        log(signals === 1 ? `agent: ${signal}: finishing the batch in flight (again to cancel it)` : `agent: ${signal}: cancelling the scanners`);
        agent.stop({ now: signals > 1 });
      };
      process.on('SIGINT', onSignal);
      process.on('SIGTERM', onSignal);
      log(`agent: ${flags.server}, allow ${allow.specs.join(', ') || 'nothing'}, preflight ${flags.preflight}, nmap ${tools.nmap ? 'yes' : 'no'}, masscan ${tools.masscan && tools.rawSockets ? 'yes' : 'no'}`);
      try {
        const stats = await agent.run();
        process.stdout.write(`${JSON.stringify(stats)}\n`);
      } finally {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
      }
    });
}
