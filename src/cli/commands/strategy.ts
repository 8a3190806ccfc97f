import { readFileSync } from 'node:fs';
import { cliIo } from '../io.js';
import { Command, Option } from 'commander';
import { loadNmapServices } from '../../catalog/index.js';
import { PortbanditError, resolveSeed } from '../../core/index.js';
import { loadRecording } from '../../recording/index.js';
import { simulate } from '../../../simulator/index.js';
import { type Explanation, type StrategyName, createStrategy, getStrategy, strategies, strategyNames } from '../../../strategies/index.js';
import { collectKeyValue, parseInteger, parseNumber } from '../options.js';

interface ExplainFlags {
  strategy: string;
  state?: string;
  recording?: string;
  budget: number;
  seed?: string;
  param?: Record<string, string>;
  tag?: string[];
  prefixes?: boolean;
  top: number;
  json?: boolean;
}

/** One registered strategy as `strategy list` shows it. */
export interface StrategyListing {
  readonly name: string;
  readonly summary: string;
  readonly parameters: ReadonlyArray<{
    readonly name: string;
    readonly type: string;
    readonly default: unknown;
    readonly description: string;
  }>;
}

/** Every registered strategy with its summary and parameters (defaults included). */
export function listStrategies(): StrategyListing[] {
  return strategyNames.map((name: StrategyName) => {
    const d = strategies[name];
    return {
      name,
      summary: d.summary,
      parameters: d.parameters.map((p) => ({ name: p.name, type: p.type, default: p.default, description: p.description })),
    };
  });
}

const show = (v: unknown): string => (Array.isArray(v) ? (v.length === 0 ? '[]' : v.join(',')) : String(v));

/** The human listing of `strategy list`. */
export function formatStrategyList(list: readonly StrategyListing[]): string {
  const lines: string[] = [];
  for (const s of list) {
    lines.push(`${s.name}: ${s.summary}`);
    for (const p of s.parameters) lines.push(`    ${`${p.name}=${show(p.default)}`.padEnd(28)} ${p.description}`);
    lines.push('');
  }
  return lines.join('\n');
}

/**
 * Keep the groups asked for: `tags` by exact name ("*" is the whole scope); without tags, the
 * scope and the scope tags, and prefix groups ("198.18.0.0/24") only with `prefixes`.
 */
export function filterExplanation(x: Explanation, tags: readonly string[] | undefined, prefixes: boolean): Explanation {
  const wanted = tags !== undefined && tags.length > 0 ? new Set(tags) : null;
  const groups = x.groups.filter((g) => (wanted ? wanted.has(g.group) : prefixes || !g.group.includes('/')));
  if (wanted) {
    const missing = [...wanted].filter((t) => !x.groups.some((g) => g.group === t));
    if (missing.length > 0) {
      const known = x.groups
        .map((g) => g.group)
        .slice(0, 20)
        .join(', ');
      throw new PortbanditError(
        'PB_ERR_UNKNOWN_TAG',
        `no learned group ${missing.map((m) => JSON.stringify(m)).join(', ')} (known: ${known || 'none'})`,
        { where: '--tag' },
      );
    }
  }
  return { ...x, groups };
}

/** The human table of `strategy explain`. */
export function formatExplanation(x: Explanation, names: (port: number) => string | undefined = () => undefined): string {
  const s = x.split;
  const lines = [
    `strategy ${x.strategy}`,
    `budget split per host (probes): must-have ${s.mustHave}, fixed ${s.fixed}, history ${s.history}, learned ${s.learned}, exploration ${s.exploration}`,
  ];
  for (const note of x.notes ?? []) lines.push(`  ${note}`);
  for (const g of x.groups) {
    lines.push('', `${g.group === '*' ? 'whole scope (*)' : g.group}: ${g.observations.toFixed(1)} host results learned`);
    lines.push(`  ${'port'.padStart(5)}  ${'service'.padEnd(16)}${'estimate'.padStart(10)}${'trials'.padStart(10)}`);
    for (const p of g.top) {
      const trials = p.trials === undefined ? '-' : p.trials.toFixed(1);
      lines.push(
        `  ${String(p.port).padStart(5)}  ${(names(p.port) ?? '').slice(0, 15).padEnd(16)}${p.estimate.toFixed(4).padStart(10)}${trials.padStart(10)}`,
      );
    }
  }
  return lines.join('\n') + '\n';
}

function readState(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (cause) {
    throw new PortbanditError('PB_ERR_IO', `cannot read the state file: ${(cause as Error).message}`, { where: path, cause });
  }
  try {
    return JSON.parse(text);
  } catch (cause) {
    throw new PortbanditError(
      'PB_ERR_STRATEGY_STATE',
      `expected a JSON strategy state (as written by simulate --state-out): ${(cause as Error).message}`,
      { where: path, cause },
    );
  }
}

/** Build the strategy from a saved state or by replaying a recording, and explain it. */
export async function explainStrategy(flags: ExplainFlags): Promise<Explanation> {
  if ((flags.state === undefined) === (flags.recording === undefined)) {
    throw new PortbanditError(
      'PB_ERR_FLAG_CONFLICT',
      'expected exactly one of --state FILE (a saved state) or --recording FILE (learn by replay)',
      { where: '--state' },
    );
  }
  getStrategy(flags.strategy);
  const catalog = loadNmapServices();
  const state = flags.state === undefined ? undefined : readState(flags.state);
  const strategy = createStrategy({ strategy: flags.strategy, budget: flags.budget, params: flags.param ?? {} }, { catalog }, state);
  if (flags.recording !== undefined) {
    const seed = resolveSeed(flags.seed);
    if (flags.seed === undefined) cliIo().stderr.write(`strategy explain: no --seed given, using ${seed}\n`);
    const recording = await loadRecording(flags.recording);
    cliIo().stderr.write(`strategy explain: learning from ${recording.size} host-epochs of ${flags.recording}\n`);
    simulate(recording, strategy, { seed });
  }
  return filterExplanation(strategy.explain(flags.top), flags.tag, flags.prefixes === true);
}

/** `portbandit strategy`: list the registered strategies, explain what one has learned. */
export function createStrategyCommand(): Command {
  const command = new Command('strategy').description('Port-selection strategies: list them, and explain what a learned one believes.');
  command
    .command('list')
    .description('Every registered strategy with its summary and parameters (with defaults).')
    .option('--json', 'print one JSON array on stdout')
    .action((flags: { json?: boolean }) => {
      const list = listStrategies();
      cliIo().stdout.write(flags.json ? JSON.stringify(list) + '\n' : formatStrategyList(list));
    });
  command
    .command('explain')
    .description(
      "Per tag, the top learned ports with their estimates, and how the budget splits into must-have / history / learned / exploration, of a saved state or a replay (what a running coordinator's policies learned: `portbandit policy learned`).",
    )
    .addOption(new Option('--strategy <name>', 'the strategy the state belongs to').choices(strategyNames).makeOptionMandatory())
    .option('--state <file>', 'a saved strategy state (simulate --state-out)')
    .option('--recording <file>', 'learn by replaying this recording first (instead of --state)')
    .option('--budget <n>', 'the budget the strategy runs with (the split depends on it)', parseNumber(0, 65535), 100)
    .option('--seed <seed>', 'the replay seed with --recording')
    .option('--param <key=value>', 'a strategy parameter (repeatable), as the state was learned with', collectKeyValue)
    .option(
      '--tag <tag>',
      'only this group: a scope tag, "*" for the whole scope, or a prefix (repeatable)',
      (v: string, prev: string[] = []) => [...prev, v],
    )
    .option('--prefixes', 'also list per-prefix groups (adaptive)')
    .option('--top <n>', 'ports listed per group', parseInteger(1, 65535), 10)
    .option('--json', 'print one JSON object on stdout')
    .action(async (flags: ExplainFlags) => {
      const x = await explainStrategy(flags);
      const catalog = loadNmapServices();
      cliIo().stdout.write(flags.json ? JSON.stringify(x) + '\n' : formatExplanation(x, (p) => catalog.name(p)));
    });
  return command;
}

/** Registers `strategy` on the program. */
export function registerStrategy(program: Command): void {
  program.addCommand(createStrategyCommand());
}
