import { readFileSync, writeFileSync } from 'node:fs';
import { cliIo } from '../io.js';
import { Command, Option } from 'commander';
import { loadNmapServices, parseServicesFile, tcpPorts } from '../../catalog/index.js';
import { PortbanditError, PortRanges, resolveSeed } from '../../core/index.js';
import { loadRecording } from '../../recording/index.js';
import { simulate, type ProgressCallback, type SimulationResult } from '../../../simulator/index.js';
import { createStrategy, getStrategy, strategyNames } from '../../../strategies/index.js';
import { collectKeyValue, parseInteger, parseNumber } from '../options.js';

/** Host-epochs above which progress goes to stderr even when it is not a terminal. */
const LONG_RUN = 100_000;

interface SimulateFlags {
  recording: string;
  strategy: string;
  param?: Record<string, string>;
  budget: number;
  seed?: string;
  batch?: number;
  order?: 'recording' | 'shuffled';
  mustHave?: string;
  exclude?: string;
  maxPerHost?: number;
  pseudoThreshold?: number;
  services?: string;
  stateIn?: string;
  stateOut?: string;
  perHost?: boolean;
  json?: boolean;
}

function portList(spec: string | undefined, flag: string): number[] | undefined {
  if (spec === undefined) return undefined;
  try {
    return PortRanges.parse(spec, flag).toArray();
  } catch (error) {
    if (error instanceof PortbanditError) throw new PortbanditError('PB_ERR_FLAG_VALUE', error.message, { cause: error });
    throw error;
  }
}

function readJson(path: string, flag: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (cause) {
    throw new PortbanditError('PB_ERR_IO', `cannot read ${flag} file: ${(cause as Error).message}`, { where: path, cause });
  }
  try {
    return JSON.parse(text);
  } catch (cause) {
    throw new PortbanditError(
      'PB_ERR_STRATEGY_STATE',
      `expected a JSON strategy state (as written by --state-out): ${(cause as Error).message}`,
      {
        where: path,
        cause,
      },
    );
  }
}

/** Ports of a Natlas services file, as the strategy's `ports` parameter. */
function servicesParam(strategy: string, path: string): number[] {
  if (!getStrategy(strategy).parameters.some((p) => p.name === 'ports' && p.type === 'ports')) {
    throw new PortbanditError('PB_ERR_FLAG_CONFLICT', `strategy ${strategy} takes no services list (use it with --strategy fixed)`, {
      where: '--services',
    });
  }
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (cause) {
    throw new PortbanditError('PB_ERR_IO', `cannot read services file: ${(cause as Error).message}`, { where: path, cause });
  }
  const ports = tcpPorts(parseServicesFile(text, path));
  if (ports.length === 0) throw new PortbanditError('PB_ERR_SERVICES_FILE', 'expected at least one TCP port', { where: path });
  return ports;
}

function createProgress(size: number): ProgressCallback | undefined {
  const tty = cliIo().stderr.isTTY === true;
  if (!tty && size < LONG_RUN) return undefined;
  const started = performance.now();
  return ({ epoch, epochs, done, hosts }) => {
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    const line = `simulate: epoch ${epoch + 1}/${epochs}, ${done}/${hosts} hosts, ${seconds} s`;
    if (tty) cliIo().stderr.write(`\r${line}${done === hosts && epoch + 1 === epochs ? '\n' : ''}`);
    else if (done === hosts) cliIo().stderr.write(`${line}\n`);
  };
}

const pct = (x: number | null): string => (x === null ? '-' : `${(100 * x).toFixed(2)}%`);

/** The readable summary printed without --json. */
export function formatSimulationSummary(r: SimulationResult): string {
  const lines: string[] = [];
  const params = Object.entries(r.params)
    .map(([k, v]) => `${k}=${Array.isArray(v) ? v.join(',') : String(v)}`)
    .join(' ');
  lines.push(
    `strategy ${r.strategy}${params ? ` (${params})` : ''}, budget ${r.budget}, seed ${r.seed}, batch ${r.batch}${r.order === 'shuffled' ? ', shuffled order' : ''}`,
  );
  lines.push(`recording ${r.recording}: ${r.hosts} hosts, ${r.epochs} epochs, ${r.hostEpochs} host-epochs`);
  lines.push(
    `coverage ${pct(r.coverage)} (${r.found} of ${r.total} services), precision ${pct(r.precision)}, ${r.probes} probes (${r.probesPerHost?.toFixed(1) ?? '-'} per host-epoch)`,
  );
  lines.push(`pseudo-service hosts (> ${r.pseudoThreshold} open ports): ${r.pseudoHosts}, ${r.probesOnPseudo} probes spent on them`);
  lines.push(`regret vs the oracle: ${r.regret.missed} services missed, ${r.regret.excessProbes} probes beyond the oracle's`);
  const d = r.epochsToDetect;
  lines.push(
    `new services: ${d.count} appeared after epoch 0, ${d.detected} found (mean ${d.mean?.toFixed(2) ?? '-'}, median ${d.median ?? '-'} epochs), ${d.censored} never found`,
  );
  if (r.rollout) {
    const o = r.rollout;
    lines.push(
      `rollout of port ${o.port} to ${o.subnet} at epoch ${o.epoch}: ${o.hosts} hosts, found within 0/1/2 epochs on ${pct(o.within0)} / ${pct(o.within1)} / ${pct(o.within2)}; the port first found anywhere in the scope ${o.knownEpoch === null ? 'never' : `in epoch ${o.knownEpoch}`}`,
    );
  }
  lines.push(
    '',
    'tag'.padEnd(16) +
      'hosts'.padStart(8) +
      'services'.padStart(10) +
      'coverage'.padStart(10) +
      'precision'.padStart(11) +
      'new'.padStart(7) +
      'found'.padStart(8) +
      'mean delay'.padStart(12),
  );
  for (const [tag, t] of Object.entries(r.perTag)) {
    const n = t.epochsToDetect;
    lines.push(
      tag.padEnd(16) +
        String(t.hosts).padStart(8) +
        String(t.total).padStart(10) +
        pct(t.coverage).padStart(10) +
        pct(t.precision).padStart(11) +
        String(n.count).padStart(7) +
        pct(n.count === 0 ? null : n.detected / n.count).padStart(8) +
        (n.mean?.toFixed(2) ?? '-').padStart(12),
    );
  }
  lines.push('', 'epoch'.padEnd(8) + 'hosts'.padStart(8) + 'services'.padStart(10) + 'found'.padStart(10) + 'coverage'.padStart(10));
  for (const e of r.perEpoch) {
    lines.push(
      String(e.epoch).padEnd(8) +
        String(e.hosts).padStart(8) +
        String(e.total).padStart(10) +
        String(e.found).padStart(10) +
        pct(e.coverage).padStart(10),
    );
  }
  return lines.join('\n') + '\n';
}

async function runSimulate(flags: SimulateFlags): Promise<void> {
  const params: Record<string, unknown> = { ...(flags.param ?? {}) };
  getStrategy(flags.strategy);
  if (flags.services !== undefined) params.ports = servicesParam(flags.strategy, flags.services);
  const seed = resolveSeed(flags.seed);
  if (flags.seed === undefined) cliIo().stderr.write(`simulate: no --seed given, using ${seed}\n`);
  const state = flags.stateIn === undefined ? undefined : readJson(flags.stateIn, '--state-in');
  const strategy = createStrategy(
    {
      strategy: flags.strategy,
      params,
      budget: flags.budget,
      mustHave: portList(flags.mustHave, '--must-have'),
      exclude: portList(flags.exclude, '--exclude'),
      maxPerHost: flags.maxPerHost,
      pseudoThreshold: flags.pseudoThreshold,
    },
    { catalog: loadNmapServices() },
    state,
  );
  const recording = await loadRecording(flags.recording);
  const result = simulate(recording, strategy, {
    seed,
    batch: flags.batch,
    order: flags.order,
    pseudoThreshold: flags.pseudoThreshold,
    perHost: flags.perHost === true,
    params,
    onProgress: createProgress(recording.size),
  });
  if (flags.stateOut !== undefined) {
    try {
      writeFileSync(flags.stateOut, JSON.stringify(strategy.state()) + '\n');
    } catch (cause) {
      throw new PortbanditError('PB_ERR_IO', `cannot write the strategy state: ${(cause as Error).message}`, {
        where: flags.stateOut,
        cause,
      });
    }
  }
  cliIo().stdout.write(flags.json ? JSON.stringify(result) + '\n' : formatSimulationSummary(result));
}

/** `portbandit simulate`: replay a recording against a strategy and print its metrics. */
export function createSimulateCommand(): Command {
  return new Command('simulate')
    .description(
      'Replay a scope recording against a strategy, epoch by epoch, and report coverage, precision, regret and detection delays.',
    )
    .requiredOption('--recording <file>', 'the scope recording (NDJSON, docs/recording-format.md)')
    .addOption(new Option('--strategy <name>', 'the strategy to replay').choices(strategyNames).makeOptionMandatory())
    .option('--param <key=value>', 'a strategy parameter (repeatable)', collectKeyValue)
    .requiredOption('--budget <n>', 'average probes per host per epoch', parseNumber(0, 65535))
    .option('--seed <seed>', 'the run seed (same seed, same result); default: the current time, printed on stderr')
    .option('--batch <n>', 'host decisions per feedback batch (results reach the strategy late, B at a time)', parseInteger(1), 256)
    .addOption(
      new Option(
        '--order <order>',
        'hosts within an epoch: in recording order, or shuffled per epoch (seeded) as the coordinator visits them',
      )
        .choices(['recording', 'shuffled'])
        .default('recording'),
    )
    .option('--must-have <ports>', 'ports always probed first, e.g. "22,443"')
    .option('--exclude <ports>', 'ports never probed, e.g. "9100,515"')
    .option('--max-per-host <n>', 'hard cap on probes for one host-epoch', parseInteger(1, 65535))
    .option(
      '--pseudo-threshold <n>',
      'hosts with more true open ports than this are pseudo-service hosts, excluded from totals (default 1000)',
      parseInteger(1),
    )
    .option('--services <file>', "a Natlas services file (name<TAB>port/proto) as the fixed strategy's list")
    .option('--state-in <file>', 'start from a saved strategy state (JSON)')
    .option('--state-out <file>', 'write the learned strategy state (JSON) after the run')
    .option('--per-host', 'add the per-host breakdown (for bootstrap confidence intervals) to the JSON')
    .option('--json', 'print exactly one JSON object on stdout')
    .action(async (flags: SimulateFlags) => runSimulate(flags));
}

/** Registers `simulate` on the program. */
export function registerSimulate(program: Command): void {
  program.addCommand(createSimulateCommand());
}
