import { Command } from 'commander';
import { cliIo } from '../io.js';
import { loadNmapServices } from '../../catalog/index.js';
import { generateRecording } from '../../../simulator/synthetic/index.js';
import { simulate, type SimulationResult } from '../../../simulator/index.js';
import { createStrategy, strategyNames } from '../../../strategies/index.js';
import { parseInteger, parseNumber } from '../options.js';

interface ShowcaseFlags {
  profile: string;
  hosts: number;
  epochs: number;
  budget: number;
  seed: string;
  json?: boolean;
}

const pct = (x: number | null): string => (x === null ? '-' : `${(100 * x).toFixed(1)}%`);

/** The side-by-side table printed by `portbandit showcase`. */
export function formatShowcaseTable(results: readonly SimulationResult[]): string {
  const header = ['strategy', 'coverage', 'precision', 'probes/host', 'new found', 'median delay', 'rollout <=1'];
  const rows = results.map((r) => [
    r.strategy,
    pct(r.coverage),
    pct(r.precision),
    r.probesPerHost === null ? '-' : r.probesPerHost.toFixed(1),
    r.epochsToDetect.count === 0 ? '-' : pct(r.epochsToDetect.detected / r.epochsToDetect.count),
    r.epochsToDetect.median === null ? '-' : `${r.epochsToDetect.median} ep`,
    r.rollout === null ? '-' : pct(r.rollout.within1),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: readonly string[]): string =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n') + '\n';
}

/**
 * What the rollout column measured: which port went to which subnet when, whether nmap's table
 * or another subnet could have pointed to it, and when each learner first found it anywhere.
 */
export function describeRollout(
  rollout: NonNullable<SimulationResult['rollout']>,
  results: readonly SimulationResult[],
  catalog: { rank(port: number): number },
): string {
  const rank = catalog.rank(rollout.port);
  const known = rank < 0 ? 'in no nmap list' : `nmap's rank ${rank + 1}`;
  const first = results
    .filter((r) => r.rollout !== null)
    .map((r) => `${r.strategy} ${r.rollout!.knownEpoch === null ? 'never' : `epoch ${r.rollout!.knownEpoch}`}`)
    .join(', ');
  return (
    `The rollout: port ${rollout.port} (${known}) opened on ${rollout.hosts} hosts of ${rollout.subnet} in epoch ${rollout.epoch}.\n` +
    `First found anywhere (before the rollout epoch: it could spread at once): ${first}.`
  );
}

async function runShowcase(flags: ShowcaseFlags): Promise<void> {
  const catalog = loadNmapServices();
  const started = performance.now();
  const log = (message: string): void => {
    cliIo().stderr.write(`showcase: ${message} (${((performance.now() - started) / 1000).toFixed(1)} s)\n`);
  };
  const recording = generateRecording({ profile: flags.profile, hosts: flags.hosts, epochs: flags.epochs, seed: flags.seed }, catalog);
  log(`generated a synthetic ${flags.profile} scope: ${flags.hosts} hosts x ${flags.epochs} epochs`);
  const results: SimulationResult[] = [];
  // Every registered strategy, learning ones included, at the same budget and seed.
  for (const name of strategyNames) {
    const strategy = createStrategy({ strategy: name, budget: flags.budget }, { catalog });
    results.push(simulate(recording, strategy, { seed: flags.seed }));
    log(`replayed ${name}`);
  }
  if (flags.json) {
    cliIo().stdout.write(
      JSON.stringify({
        profile: flags.profile,
        hosts: flags.hosts,
        epochs: flags.epochs,
        budget: flags.budget,
        seed: flags.seed,
        results,
      }) + '\n',
    );
    return;
  }
  const total = results[0]?.total ?? 0;
  cliIo().stdout.write(
    `Synthetic "${flags.profile}" scope (198.18.0.0/15): ${flags.hosts} hosts x ${flags.epochs} epochs, ${total} open services outside pseudo-service hosts.\n` +
      `Every strategy probes on average ${flags.budget} of 65,535 TCP ports per host per epoch (seed ${flags.seed}).\n\n`,
  );
  cliIo().stdout.write(formatShowcaseTable(results));
  const rollout = results.find((r) => r.rollout !== null)?.rollout;
  cliIo().stdout.write(
    `\ncoverage = services found / services open; precision = services found / probes; "new found" = services that\n` +
      `appeared after epoch 0 and were found; "rollout <=1" = hosts of the subnet-wide rollout found within 1 epoch.\n` +
      (rollout ? `${describeRollout(rollout, results, catalog)}\n` : '') +
      `\n` +
      `The full thing (a /16 over 12 epochs, any strategy):\n` +
      `  portbandit scope generate --profile enterprise --hosts 65536 --epochs 12 --seed 1 --out scope.ndjson\n` +
      `  portbandit simulate --recording scope.ndjson --strategy top-k --budget ${flags.budget} --seed 1\n` +
      `  (strategies: ${strategyNames.join(', ')}; see docs/simulator.md)\n`,
  );
}

/** `portbandit showcase`: a small synthetic scope, every strategy side by side (`npm start`). */
export function createShowcaseCommand(): Command {
  return (
    new Command('showcase')
      .description("Generate a small synthetic scope in memory and print every registered strategy's coverage and precision side by side.")
      .option('--profile <name>', 'synthetic scope profile', 'enterprise')
      .option('--hosts <n>', 'hosts in the scope', parseInteger(1, 131072), 2048)
      .option('--epochs <n>', 'epochs to replay', parseInteger(1, 1000), 8)
      .option('--budget <n>', 'average probes per host per epoch', parseNumber(0, 65535), 100)
      // Seed 2 lays the 2,048 default hosts out over all four enterprise tags (dmz, office, datacenter, iot).
      .option('--seed <seed>', 'seed for the scope and the strategies', '2')
      .option('--json', "print one JSON object with every strategy's result")
      .action(async (flags: ShowcaseFlags) => runShowcase(flags))
  );
}

/** Registers `showcase` on the program. */
export function registerShowcase(program: Command): void {
  program.addCommand(createShowcaseCommand());
}
