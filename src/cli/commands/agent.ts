import { type Command, InvalidArgumentError } from 'commander';
import { cliIo } from '../io.js';
import { readFileSync } from 'node:fs';
import {
  Agent,
  AllowList,
  DETECTION_DEFAULTS,
  SCAN_DEFAULTS,
  SCREENSHOT_DEFAULTS,
  type PreflightChoice,
  Screenshotter,
  describeMissingTools,
  describePreflight,
  detectScannerTools,
} from '../../../agent/index.js';
import { MAX_SCREENSHOT_BYTES } from '../../protocol/index.js';
import { DEFAULT_SCRIPTS } from '../../coordinator/index.js';
import { PortbanditError } from '../../core/index.js';
import { collect, parseInteger } from '../options.js';
import { registerAgentAdmin } from './agent-admin.js';

interface AgentFlags {
  server: string[];
  token?: string;
  tokenFile?: string;
  concurrency: number;
  allow: string[];
  preflight: PreflightChoice;
  scriptsAllow?: string[];
  once?: boolean;
  rate: number;
  retries: number;
  silentRetries: number;
  wait: number;
  connectConcurrency: number;
  connectTimeout: number;
  connectMinTimeout: number;
  pseudoThreshold: number;
  nmapParallel: number;
  masscanAdapter?: string;
  masscanAdapterIp?: string;
  masscanRouter?: string;
  masscanSightCheck: number;
  screenshots?: boolean;
  chromium: string;
  screenshotTimeout: number;
  screenshotMaxBytes: number;
  screenshotConcurrency: number;
  screenshotViewport: { width: number; height: number };
}

function parseViewport(value: string): { width: number; height: number } {
  const m = /^(\d{2,5})x(\d{2,5})$/.exec(value.trim());
  const width = Number(m?.[1]);
  const height = Number(m?.[2]);
  if (!m || width < 320 || width > 3840 || height < 200 || height > 2160)
    throw new InvalidArgumentError(`expected WIDTHxHEIGHT from 320x200 to 3840x2160, got "${value}".`);
  return { width, height };
}

const log = (line: string) => cliIo().stderr.write(`${new Date().toISOString()} ${line}\n`);

function parsePreflight(value: string): PreflightChoice {
  if (value === 'auto' || value === 'masscan' || value === 'connect') return value;
  throw new InvalidArgumentError(`expected auto, masscan or connect, got "${value}".`);
}

function collectList(value: string, previous: string[] = []): string[] {
  return [
    ...previous,
    ...value
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean),
  ];
}

/** `portbandit agent`: pull work from a coordinator, scan it (preflight + nmap), submit results. */
export function registerAgent(program: Command): void {
  const command = program
    .command('agent')
    .description(
      'Scanning agent: pull work from a coordinator, preflight (masscan or a TCP connect sweep), nmap -sV on the open ports, submit. Subcommands add, groups and list manage the agent registry.',
    )
    // Not commander-required: the registry subcommands would inherit the requirement.
    .option(
      '--server <url>',
      'coordinator URL, e.g. http://127.0.0.1:8080 (required); repeat it for coordinators sharing one PostgreSQL store: the agent moves to the next when one does not answer',
      collect,
      [],
    )
    .option(
      '--token-file <file>',
      'read the agent token from this file (portbandit token create --agent NAME); default $PORTBANDIT_AGENT_TOKEN',
    )
    .option('--token <token>', 'the agent token itself (visible to other users in ps: prefer --token-file or $PORTBANDIT_AGENT_TOKEN)')
    .option('--concurrency <n>', 'work items held at once: new work is leased as soon as a host is submitted', parseInteger(1, 4096), 256)
    .option('--allow <cidr>', 'scan only targets in this range (repeatable; default: nothing is allowed)', collect, [])
    .option('--preflight <kind>', 'auto (masscan when root + installed + routed, else connect), masscan or connect', parsePreflight, 'auto')
    .option(
      '--scripts-allow <names>',
      `NSE scripts this agent will run (comma-separated, repeatable; default ${DEFAULT_SCRIPTS.join(',')}, the default policy's; "none" for none)`,
      collectList,
    )
    .option('--once', 'scan one batch (or none when there is no work) and exit')
    .option('--rate <pps>', 'masscan packets per second', parseInteger(1, 1_000_000), SCAN_DEFAULTS.masscan.rate)
    .option('--retries <n>', 'masscan/connect-sweep retries', parseInteger(0, 10), SCAN_DEFAULTS.masscan.retries)
    .option(
      '--silent-retries <n>',
      "masscan/connect-sweep retries of a visit's later rounds when its first look found nothing open (a dead or firewalled address: most of a sparse scope's sweeping); a port missed by a lost probe is probed again at the next visit",
      parseInteger(0, 10),
      SCAN_DEFAULTS.silentRetries,
    )
    .option('--wait <s>', 'masscan --wait seconds', parseInteger(0, 60), SCAN_DEFAULTS.masscan.waitSeconds)
    .option('--connect-concurrency <n>', 'connect sweep: connections in flight', parseInteger(1, 10_000), SCAN_DEFAULTS.connect.concurrency)
    .option(
      '--connect-timeout <ms>',
      'connect sweep: the longest per-port timeout, and the first before any answer measured the round trip',
      parseInteger(50, 60_000),
      SCAN_DEFAULTS.connect.timeoutMs,
    )
    .option(
      '--connect-min-timeout <ms>',
      "connect sweep: the shortest per-port timeout the measured round trips may set (RTT + 4 deviations, as nmap); --connect-timeout's value turns adaptation off",
      parseInteger(1, 60_000),
      SCAN_DEFAULTS.connect.minTimeoutMs,
    )
    .option(
      '--pseudo-threshold <n>',
      'hosts open on more ports than this skip nmap (pseudo-services)',
      parseInteger(1, 65535),
      SCAN_DEFAULTS.pseudoServiceThreshold,
    )
    .option(
      '--nmap-parallel <n>',
      'nmap -sV processes at once (one per host with open ports)',
      parseInteger(1, 64),
      DETECTION_DEFAULTS.parallel,
    )
    .option('--masscan-adapter <if>', 'masscan --adapter (default: from ip route get)')
    .option('--masscan-adapter-ip <ip>', 'masscan --adapter-ip')
    .option('--masscan-router <ip>', 'masscan --router-ip')
    .option(
      '--masscan-sight-check <n>',
      "masscan preflight: when masscan saw nothing of a host that had nothing open at its last visit, connect to its n most likely ports (nmap's frequencies) at the visit's first round, so that a firewall dropping masscan's probes is not read as a host with nothing open (0: off)",
      parseInteger(0, 64),
      SCAN_DEFAULTS.masscanSightCheck,
    )
    .option(
      '--screenshots',
      'render each open HTTP(S) service with headless Chromium after service detection and submit the image with the result',
    )
    .option('--chromium <path>', 'the Chromium binary for --screenshots (never downloaded)', SCREENSHOT_DEFAULTS.executablePath)
    .option(
      '--screenshot-timeout <ms>',
      'longest one page may take, navigation to image',
      parseInteger(1000, 120_000),
      SCREENSHOT_DEFAULTS.timeoutMs,
    )
    .option(
      '--screenshot-max-bytes <n>',
      'largest image sent: a larger PNG is re-encoded as JPEG, then dropped with a note',
      parseInteger(16 * 1024, MAX_SCREENSHOT_BYTES),
      SCREENSHOT_DEFAULTS.maxBytes,
    )
    .option('--screenshot-concurrency <n>', 'pages rendered at once', parseInteger(1, 32), SCREENSHOT_DEFAULTS.concurrency)
    .option('--screenshot-viewport <WxH>', 'browser viewport (the image size)', parseViewport, { ...SCREENSHOT_DEFAULTS.viewport })
    .action(async (flags: AgentFlags) => {
      if (flags.server.length === 0)
        throw new PortbanditError('PB_ERR_FLAG_MISSING', 'the coordinator URL is required: --server http://127.0.0.1:8080', {
          where: '--server',
        });
      const token = readToken(flags);
      const allow = AllowList.parse(flags.allow);
      if (flags.allow.length === 0) log('agent: no --allow ranges: every work item will be refused');
      const explicit = [flags.masscanAdapter, flags.masscanAdapterIp, flags.masscanRouter];
      if (explicit.some(Boolean) && !explicit.every(Boolean)) {
        throw new PortbanditError(
          'PB_ERR_FLAG_CONFLICT',
          'give all three of --masscan-adapter, --masscan-adapter-ip and --masscan-router, or none',
          { where: '--masscan-adapter' },
        );
      }
      const tools = await detectScannerTools();
      for (const line of describeMissingTools(tools)) log(`agent: ${line}`);
      if (flags.preflight === 'masscan' && (!tools.masscan || !tools.rawSockets)) {
        throw new PortbanditError(
          'PB_ERR_SCANNER',
          'masscan preflight requested but masscan is missing or this process lacks raw sockets (apt-get install nmap masscan; run as root or with CAP_NET_RAW)',
          { where: '--preflight' },
        );
      }
      const screenshots = flags.screenshots
        ? new Screenshotter({
            executablePath: flags.chromium,
            timeoutMs: flags.screenshotTimeout,
            viewport: flags.screenshotViewport,
            maxBytes: flags.screenshotMaxBytes,
            concurrency: flags.screenshotConcurrency,
            maxPerHost: SCREENSHOT_DEFAULTS.maxPerHost,
            allow,
            log,
          })
        : undefined;
      // Started now: a missing or broken Chromium stops the agent before it leases anything.
      const chromiumVersion = screenshots
        ? await screenshots.start().catch(async (error: unknown) => {
            await screenshots.close();
            throw error;
          })
        : undefined;
      const agent = new Agent({
        server: flags.server,
        token,
        concurrency: flags.concurrency,
        once: Boolean(flags.once),
        scan: {
          allow,
          scriptsAllow: new Set((flags.scriptsAllow ?? [...DEFAULT_SCRIPTS]).filter((s) => s !== 'none')),
          preflight: flags.preflight,
          tools,
          masscan: {
            rate: flags.rate,
            retries: flags.retries,
            waitSeconds: flags.wait,
            ...(flags.masscanAdapter
              ? { route: { adapter: flags.masscanAdapter, adapterIp: flags.masscanAdapterIp!, routerIp: flags.masscanRouter! } }
              : {}),
          },
          connect: {
            concurrency: flags.connectConcurrency,
            timeoutMs: flags.connectTimeout,
            minTimeoutMs: Math.min(flags.connectMinTimeout, flags.connectTimeout),
            retries: flags.retries,
          },
          pseudoServiceThreshold: flags.pseudoThreshold,
          masscanSightCheck: flags.masscanSightCheck,
          silentRetries: flags.silentRetries,
          nmapParallel: flags.nmapParallel,
          log,
          ...(screenshots ? { screenshots } : {}),
        },
      });
      let signals = 0;
      const onSignal = (signal: string) => {
        signals++;
        log(
          signals === 1
            ? `agent: ${signal}: finishing the batch in flight (again to cancel it)`
            : `agent: ${signal}: cancelling the scanners`,
        );
        agent.stop({ now: signals > 1 });
      };
      process.on('SIGINT', onSignal);
      process.on('SIGTERM', onSignal);
      log(
        `agent: ${flags.server.join(' then ')}, allow ${allow.specs.join(', ') || 'nothing'}, ${flags.concurrency} slots, nmap ${tools.nmap ? `yes (${flags.nmapParallel} at once)` : 'no'}`,
      );
      log(
        `agent: preflight ${flags.preflight}: ${describePreflight({ preflight: flags.preflight, tools })} where the policy asks for auto or masscan`,
      );
      log(
        screenshots
          ? `agent: screenshots on: Chromium ${chromiumVersion} at ${flags.chromium}, ${flags.screenshotViewport.width}x${flags.screenshotViewport.height}, ${flags.screenshotTimeout} ms per page, ${flags.screenshotConcurrency} at once, at most ${flags.screenshotMaxBytes} bytes per image; pages may reach only the scanned address and port`
          : 'agent: screenshots off (--screenshots renders HTTP(S) services)',
      );
      try {
        const stats = await agent.run();
        cliIo().stdout.write(`${JSON.stringify(stats)}\n`);
      } finally {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
        await screenshots?.close();
      }
    });
  registerAgentAdmin(command);
}

/** The agent token: --token-file, then --token, then $PORTBANDIT_AGENT_TOKEN. */
function readToken(flags: AgentFlags): string {
  if (flags.tokenFile !== undefined) {
    let text: string;
    try {
      text = readFileSync(flags.tokenFile, 'utf8');
    } catch (cause) {
      throw new PortbanditError('PB_ERR_IO', `cannot read the agent token: ${(cause as Error).message}`, { where: '--token-file', cause });
    }
    const token = text.trim();
    if (token === '')
      throw new PortbanditError('PB_ERR_FLAG_VALUE', `the token file ${flags.tokenFile} is empty`, { where: '--token-file' });
    return token;
  }
  if (flags.token !== undefined) {
    log('agent: the token on the command line is visible to other users (ps); prefer --token-file or $PORTBANDIT_AGENT_TOKEN');
    return flags.token;
  }
  const env = cliIo().env.PORTBANDIT_AGENT_TOKEN;
  if (env === undefined || env.trim() === '') {
    throw new PortbanditError(
      'PB_ERR_FLAG_MISSING',
      'an agent token is required: --token-file FILE or $PORTBANDIT_AGENT_TOKEN (portbandit token create --agent NAME prints one)',
      { where: '--token-file' },
    );
  }
  return env.trim();
}
