import { readFileSync } from 'node:fs';
import { cliIo } from '../io.js';
import type { Command } from 'commander';
import { parseServicesFile, tcpPorts } from '../../catalog/index.js';
import { PortbanditError, PortRanges } from '../../core/index.js';
import { DEFAULT_POLICY_KEY, type PolicyInput, checkTag, parseGroupList } from '../../coordinator/index.js';
import { collectKeyValue, parseDuration, parseInteger, parseNumber } from '../options.js';
import { counted } from '../output.js';
import { withDataStore } from '../data-store.js';

const dataOption = ['--data <dir>', 'data directory (env PORTBANDIT_DATA; default ./data)'] as const;

function keyOf(tag: string): string {
  return tag === '_default' || tag === 'default' ? DEFAULT_POLICY_KEY : checkTag(tag, 'tag');
}

interface SetFlags {
  strategy?: string;
  budget?: number;
  rate?: number;
  period?: number;
  versionIntensity?: number;
  param: Record<string, string>;
  mustHave?: string;
  exclude?: string;
  services?: string;
  versionDetection?: boolean;
  script?: string[];
  hostTimeout?: number;
  silentRecheck?: number;
  preflight?: string;
  groups?: string;
  keepLast?: number;
  keepDays?: number;
  thinDailyAfter?: number;
  thinWeeklyAfter?: number;
  retention?: string;
  data?: string;
}

/** Registers `portbandit policy list|show|set|learned` (per-tag scan policies). */
export function registerPolicy(program: Command): void {
  const policy = program
    .command('policy')
    .description('Per-tag scan policies (strategy, budget, must-have/excluded ports, nmap options) and what they learned.');
  policy
    .command('list')
    .description('Every policy ("_default" covers hosts whose tags have none).')
    .option(...dataOption)
    .option('--json', 'JSON output')
    .action(async (flags: { data?: string; json?: boolean }) => {
      await withDataStore(flags.data, async (app) => {
        const all = app.coordinator.policyKeys().map((tag) => ({ tag, ...app.coordinator.policy(tag)! }));
        if (flags.json) cliIo().stdout.write(JSON.stringify(all) + '\n');
        else {
          const budgets = new Map(app.coordinator.budgets().map((b) => [b.tag, b]));
          for (const p of all) {
            const b = budgets.get(p.tag);
            const budget = p.rate !== undefined ? `rate ${p.rate}/s -> ${Math.floor(b?.budget ?? 0)} per visit` : `budget ${p.budget}`;
            cliIo().stdout.write(
              `${p.tag || '_default'}\t${p.strategy}\t${budget}\tmust-have ${p.mustHave.length}\texclude ${p.exclude.length}${p.periodSeconds !== undefined ? `\tperiod ${p.periodSeconds} s` : ''}${p.groups !== undefined ? `\tgroups ${p.groups.join(',')}` : ''}${p.retention !== undefined ? `\tretention ${JSON.stringify(p.retention)}` : ''}\n`,
            );
            if (b?.warning) cliIo().stderr.write(`warning: ${p.tag || '_default'}: ${b.warning}\n`);
          }
        }
      });
    });
  policy
    .command('set')
    .description("Set a tag's policy (_default = the default policy). Unset fields keep the current value.")
    .argument('<tag>', 'scope tag or _default')
    .option('--strategy <name>', 'strategy (fixed reproduces Natlas; adaptive learns)')
    .option('--budget <n>', 'probes per host-visit (drops a stated --rate)', parseNumber(0, 65535))
    .option(
      '--rate <pps>',
      'probes per second the fleet may spend on this tag on average: the budget per visit is derived from it, the scope size and the period',
      parseNumber(0.001, 100_000_000),
    )
    .option(
      '--period <duration>',
      'cycle period, e.g. 24h, 30m, 3600 (default policy only): a cycle does not restart before it',
      parseDuration,
    )
    .option('--version-intensity <n>', 'nmap --version-intensity 0-9 (fewer probes per silent service)', parseInteger(0, 9))
    .option('--param <k=v>', 'strategy parameter (repeatable)', collectKeyValue, {})
    .option('--must-have <ports>', 'ports always probed, e.g. 22,443,8443')
    .option('--exclude <ports>', 'ports never probed')
    .option('--services <file>', 'a Natlas services file: the list of a fixed policy, otherwise its must-have ports')
    .option('--no-version-detection', 'do not run nmap -sV')
    .option('--script <name>', 'NSE script from the server allowlist (repeatable)', (v: string, prev: string[] = []) => [...prev, v])
    .option('--host-timeout <s>', 'nmap --host-timeout in seconds', parseInteger(1, 86400))
    .option(
      '--silent-recheck <cycles>',
      'run -sV again on ports silent at their last visit (no answer within the time-out) only in cycles numbered a multiple of this; 1 = every visit (default 4)',
      parseInteger(1, 10000),
    )
    .option('--preflight <kind>', 'auto (masscan where the agent can run it), masscan, connect or none')
    .option('--groups <names>', 'agent groups that may scan this tag, e.g. internal,external ("" = any agent)')
    .option('--keep-last <n>', "retention: always keep each host's newest N visits", parseInteger(1, 1_000_000))
    .option('--keep-days <d>', 'retention: drop visits older than D days (unless kept by another rule)', parseInteger(1, 36_500))
    .option('--thin-daily-after <d>', 'retention: past D days, keep one visit per host and day', parseInteger(0, 36_500))
    .option('--thin-weekly-after <d>', 'retention: past D days, keep one visit per host and week', parseInteger(0, 36_500))
    .option(
      '--retention <mode>',
      'retention: "default" (follow the default policy\'s rules) or "keep-all"; the flags above refine what is set',
    )
    .option(...dataOption)
    .action(async (tag: string, flags: SetFlags) => {
      const key = keyOf(tag);
      await withDataStore(flags.data, async (app) => {
        const current = app.coordinator.policy(key) ?? app.coordinator.defaultPolicy;
        const input = JSON.parse(JSON.stringify(current)) as PolicyInput;
        // A new tag policy starts from the default's settings, but not from its agent groups or
        // retention: those the default applies to the tag anyway, and keeps applying as it changes.
        if (app.coordinator.policy(key) === undefined) {
          delete input.groups;
          delete input.retention;
        }
        if (flags.strategy !== undefined && flags.strategy !== current.strategy) {
          input.strategy = flags.strategy;
          input.params = {};
        }
        input.params = { ...input.params, ...flags.param };
        if (flags.budget !== undefined) {
          input.budget = flags.budget;
          if (flags.rate === undefined) input.rate = null;
        }
        if (flags.rate !== undefined) input.rate = flags.rate;
        if (flags.period !== undefined) input.periodSeconds = flags.period;
        if (flags.mustHave !== undefined) input.mustHave = PortRanges.parse(flags.mustHave, '--must-have').toArray();
        if (flags.exclude !== undefined) input.exclude = PortRanges.parse(flags.exclude, '--exclude').toArray();
        if (flags.services !== undefined) {
          let text: string;
          try {
            text = readFileSync(flags.services, 'utf8');
          } catch (cause) {
            throw new PortbanditError('PB_ERR_IO', `cannot read the services file: ${(cause as Error).message}`, {
              where: flags.services,
              cause,
            });
          }
          const ports = tcpPorts(parseServicesFile(text, flags.services));
          if (input.strategy === 'fixed') {
            input.params = { ...input.params, ports };
            input.budget = Math.max(input.budget ?? 0, ports.length);
          } else input.mustHave = ports;
        }
        input.scan = {
          ...input.scan,
          ...(flags.versionDetection === false ? { versionDetection: false } : {}),
          ...(flags.script !== undefined ? { scripts: flags.script } : {}),
          ...(flags.hostTimeout !== undefined ? { hostTimeoutSeconds: flags.hostTimeout } : {}),
          ...(flags.preflight !== undefined ? { preflight: flags.preflight as 'auto' | 'masscan' | 'connect' | 'none' } : {}),
          ...(flags.versionIntensity !== undefined ? { versionIntensity: flags.versionIntensity } : {}),
        };
        if (flags.silentRecheck !== undefined) input.silentRecheckCycles = flags.silentRecheck;
        if (flags.retention !== undefined && flags.retention !== 'default' && flags.retention !== 'keep-all') {
          throw new PortbanditError('PB_ERR_FLAG_VALUE', `expected default or keep-all, got ${JSON.stringify(flags.retention)}`, {
            where: '--retention',
          });
        }
        const retentionFlags = {
          ...(flags.keepLast !== undefined ? { keepLast: flags.keepLast } : {}),
          ...(flags.keepDays !== undefined ? { keepDays: flags.keepDays } : {}),
          ...(flags.thinDailyAfter !== undefined ? { dailyAfterDays: flags.thinDailyAfter } : {}),
          ...(flags.thinWeeklyAfter !== undefined ? { weeklyAfterDays: flags.thinWeeklyAfter } : {}),
        };
        if (flags.retention === 'default') input.retention = null;
        if (flags.retention === 'keep-all') input.retention = {};
        if (Object.keys(retentionFlags).length > 0)
          input.retention = { ...(flags.retention === undefined ? (input.retention ?? {}) : {}), ...retentionFlags };
        if (flags.groups !== undefined) {
          const groups = parseGroupList(flags.groups, '--groups');
          input.groups = groups.length > 0 ? groups : null;
        }
        const saved = await app.coordinator.setPolicy(key, input);
        cliIo().stdout.write(JSON.stringify({ tag: key, ...saved }) + '\n');
        // What `policy list` would warn of this policy, said where it is set.
        const warning = app.coordinator.budgets().find((b) => b.tag === key)?.warning;
        if (warning) cliIo().stderr.write(`warning: ${key || '_default'}: ${warning}\n`);
      });
    });
  policy
    .command('learned')
    .description("What a policy's strategy learned: top ports with estimates, budget split, batch tallies.")
    .argument('[tag]', 'scope tag or _default', '_default')
    .option('--limit <n>', 'ports to show (default 20)', parseInteger(1, 1000), 20)
    .option(...dataOption)
    .option('--json', 'JSON output')
    .action(async (tag: string, flags: { limit: number; data?: string; json?: boolean }) => {
      await withDataStore(flags.data, async (app) => {
        const e = app.coordinator.explain(keyOf(tag), flags.limit);
        if (flags.json) {
          cliIo().stdout.write(JSON.stringify(e) + '\n');
          return;
        }
        const x = e.explanation;
        const b = e.budget;
        const budget =
          b && b.rate !== undefined
            ? `budget ${Math.floor(b.budget)} per visit (from ${b.rate} probes/s over ${b.addresses} addresses${b.periodSeconds !== undefined ? ` and a ${b.periodSeconds} s period` : ''})`
            : `budget ${b ? Math.floor(b.budget) : e.policy.budget} per visit`;
        cliIo().stdout.write(
          `policy ${e.tag || '_default'}: ${x.strategy}, ${budget}; ${counted(e.batches, 'batch', 'batches')}, ${counted(e.learned, 'host visit')} learned, ${counted(e.pseudo, 'pseudo-service host')} ignored, ${counted(e.lossyBatches, 'lossy batch', 'lossy batches')}\n`,
        );
        if (b?.fullPassCycles != null)
          cliIo().stdout.write(`a pass over all 65,535 ports of a host: ${counted(b.fullPassCycles, 'cycle')} at this budget\n`);
        if (b?.warning) cliIo().stdout.write(`WARNING: ${b.warning}\n`);
        cliIo().stdout.write(
          `budget split: must-have ${x.split.mustHave}, fixed ${x.split.fixed}, history ${x.split.history}, learned ${x.split.learned}, exploration ${x.split.exploration}\n`,
        );
        for (const g of x.groups) {
          cliIo().stdout.write(`group ${g.group} (${g.observations} observations):\n`);
          for (const p of g.top)
            cliIo().stdout.write(
              `  ${String(p.port).padStart(5)}  ${(p.estimate * 100).toFixed(2)}%${p.trials !== undefined ? `  (${p.trials.toFixed(0)} trials)` : ''}\n`,
            );
        }
        for (const n of x.notes ?? []) cliIo().stdout.write(`note: ${n}\n`);
      });
    });
}
