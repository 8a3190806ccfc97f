import { mkdtempSync, realpathSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadNmapServices } from '../src/catalog/index.js';
import { RecordingWriter } from '../src/recording/index.js';
import { syntheticIp, writeGeneratedScope, type ProfileName } from '../simulator/synthetic/index.js';

/**
 * Generation benchmark: a synthetic scope (default `enterprise`, a /16 x 12 epochs) streamed to
 * a temp file. Bar: < 60 s and < 1 GiB peak RSS. Baseline in the same run: writing as many
 * fixed three-port lines with the same RecordingWriter (serialisation and I/O alone). Sizes by env:
 *   PB_BENCH_GEN_HOSTS (65536), PB_BENCH_GEN_EPOCHS (12), PB_BENCH_GEN_PROFILE (enterprise),
 *   PB_BENCH_GEN_BASELINE (1; 0 skips the baseline).
 */
export async function runGenerateBenchmark(env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const hosts = Number(env.PB_BENCH_GEN_HOSTS ?? 65536);
  const epochs = Number(env.PB_BENCH_GEN_EPOCHS ?? 12);
  const profile = (env.PB_BENCH_GEN_PROFILE ?? 'enterprise') as ProfileName;
  const catalog = loadNmapServices();
  const dir = mkdtempSync(join(tmpdir(), 'pb-bench-generate-'));
  // resourceUsage().maxRSS is in KiB and is the process's peak so far.
  const peakMiB = (): number => process.resourceUsage().maxRSS / 1024;
  try {
    const out = join(dir, 'scope.ndjson');
    let t = performance.now();
    const written = await writeGeneratedScope({ profile, hosts, epochs, seed: 'bench' }, out, undefined, catalog);
    const seconds = (performance.now() - t) / 1000;
    const peak = peakMiB();
    const bytes = statSync(out).size;
    const pass = seconds < 60 && peak < 1024;
    console.log(
      `generate: ${profile} ${hosts} hosts x ${epochs} epochs: ${written.lines} lines, ${(bytes / 2 ** 20).toFixed(0)} MiB in ${seconds.toFixed(1)} s, ` +
        `${Math.round(written.lines / seconds)} lines/s, peak RSS ${peak.toFixed(0)} MiB (bar: < 60 s, < 1024 MiB) ${pass ? 'PASS' : 'FAIL'}`,
    );
    rmSync(out, { force: true });
    if (env.PB_BENCH_GEN_BASELINE === '0') return;
    const baseOut = join(dir, 'baseline.ndjson');
    t = performance.now();
    const writer = await RecordingWriter.open(baseOut, { name: 'baseline', probed: '1-65535' });
    const open = [22, 80, 443];
    const tags = ['office'];
    for (let e = 0; e < epochs; e++) for (let h = 0; h < hosts; h++) await writer.write({ epoch: e, ip: syntheticIp(h), tags, open });
    await writer.close();
    const baseSeconds = (performance.now() - t) / 1000;
    console.log(
      `generate: baseline (same line count, fixed 3-port lines, write only): ${baseSeconds.toFixed(1)} s, ${Math.round(written.lines / baseSeconds)} lines/s; ` +
        `generation costs ${(seconds / baseSeconds).toFixed(2)}x the baseline`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const invokedDirectly = process.argv[1] !== undefined && import.meta.url === new URL(`file://${realpathSync(process.argv[1])}`).href;
if (invokedDirectly) await runGenerateBenchmark();
