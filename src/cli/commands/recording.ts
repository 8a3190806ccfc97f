import { Command } from 'commander';
import { cliIo } from '../io.js';
import {
  loadRecording,
  summarizeRecording,
  type LoadProgress,
  type LoadedRecording,
  type RecordingSummary,
} from '../../recording/index.js';

/** Files above this size show load progress on stderr even when it is not a terminal. */
const LARGE_FILE_BYTES = 64 << 20;

function createProgress(label: string): (p: LoadProgress) => void {
  const tty = cliIo().stderr.isTTY === true;
  const started = performance.now();
  let lastDecile = -1;
  return ({ bytesRead, totalBytes, lines }) => {
    if (!tty && totalBytes < LARGE_FILE_BYTES) return;
    const share = totalBytes > 0 ? Math.min(1, bytesRead / totalBytes) : 0;
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    const text = `${label}: ${(share * 100).toFixed(0)}% (${(bytesRead / 2 ** 20).toFixed(0)} MiB, ${lines} lines, ${seconds} s)`;
    if (tty) cliIo().stderr.write(`\r${text}${share >= 1 ? '\n' : ''}`);
    else {
      // Not a terminal (a log file): one line per tenth, not a carriage-return animation.
      const decile = Math.floor(share * 10);
      if (decile !== lastDecile) cliIo().stderr.write(`${text}\n`);
      lastDecile = decile;
    }
  };
}

async function load(file: string, label: string): Promise<LoadedRecording> {
  return loadRecording(file, { onProgress: createProgress(label) });
}

function pad(text: string | number, width: number): string {
  return String(text).padStart(width);
}

/** The human-readable `recording info` report. */
export function renderSummaryText(file: string, s: RecordingSummary): string {
  const lines: string[] = [];
  lines.push(`recording     ${s.name}${s.description !== undefined ? ` (${s.description})` : ''}`);
  lines.push(`file          ${file}`);
  lines.push(`probed        ${s.probed} (${s.probedPorts} ports)`);
  for (const o of s.probedOverrides) lines.push(`  override    ${o.probed} (${o.ports} ports) on ${o.observations} observations`);
  lines.push(`hosts         ${s.hosts}`);
  lines.push(`epochs        ${s.epochs}`);
  lines.push(`observations  ${s.observations}`);
  lines.push(`open services ${s.openServices}`);
  const tagNames = Object.keys(s.tags);
  lines.push(`tags          ${tagNames.length === 0 ? '(none)' : ''}`.trimEnd());
  const width = Math.max(3, ...tagNames.map((t) => t.length));
  for (const tag of tagNames)
    lines.push(`  ${tag.padEnd(width)} ${pad(s.tags[tag]!.hosts, 8)} hosts ${pad(s.tags[tag]!.observations, 10)} observations`);
  if (s.untaggedHosts > 0) lines.push(`  ${'(untagged)'.padEnd(width)} ${pad(s.untaggedHosts, 8)} hosts`);
  lines.push('per epoch     epoch  observations  open services  hosts with open');
  for (const e of s.perEpoch)
    lines.push(`              ${pad(e.epoch, 5)}  ${pad(e.observations, 12)}  ${pad(e.openServices, 13)}  ${pad(e.hostsWithOpen, 15)}`);
  if (s.topPorts.length > 0) lines.push(`top ports     ${s.topPorts.map((p) => `${p.port} (${p.open})`).join(', ')}`);
  return `${lines.join('\n')}\n`;
}

/** `recording info`: what a recording holds. */
export function createRecordingInfoCommand(): Command {
  return new Command('info')
    .description('Summarise a recording: hosts, epochs, observations, tags with host counts, open services per epoch, probed ports.')
    .argument('<file>', 'the NDJSON recording')
    .option('--json', 'print one JSON object instead of a table')
    .action(async (file: string, flags: { json?: boolean }) => {
      const summary = summarizeRecording(await load(file, 'recording info'));
      cliIo().stdout.write(flags.json === true ? `${JSON.stringify({ file, ...summary })}\n` : renderSummaryText(file, summary));
    });
}

/** `recording validate`: exit 0 when the file is a valid recording, else an error naming file:line. */
export function createRecordingValidateCommand(): Command {
  return new Command('validate')
    .description(
      'Check a recording against the format (docs/recording-format.md); exit 0 if valid, else report file:line and what was expected.',
    )
    .argument('<file>', 'the NDJSON recording')
    .action(async (file: string) => {
      const rec = await load(file, 'recording validate');
      cliIo().stdout.write(`${file}: valid (${rec.size} observations, ${rec.hostIp.length} hosts, ${rec.epochs} epochs)\n`);
    });
}

/** Registers the `recording` command group. */
export function registerRecording(program: Command): void {
  const group = new Command('recording').description('Inspect and validate scope recordings (the NDJSON replay format).');
  for (const create of [createRecordingInfoCommand, createRecordingValidateCommand]) {
    // addCommand() does not inherit settings: make nested errors reach main() like top-level ones.
    group.addCommand(create().exitOverride().showHelpAfterError('(run with --help for usage)'));
  }
  program.addCommand(group);
}
