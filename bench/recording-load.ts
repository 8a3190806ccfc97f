import { createReadStream, mkdtempSync, realpathSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { createRng } from '../src/core/rng.js';
import { RecordingWriter, loadRecording, type Observation } from '../src/recording/index.js';

const POPULAR = [22, 80, 443, 21, 25, 53, 110, 135, 139, 143, 445, 993, 995, 3306, 3389, 5900, 8080, 8443];
const TAGS = [['dmz'], ['corp'], ['corp', 'office'], ['iot'], ['dc'], []];

/** Host h's address inside 198.18.0.0/15 (benchmark data never leaves it). */
function benchIp(h: number): string {
  return `198.${18 + ((h >> 16) & 1)}.${(h >> 8) & 255}.${h & 255}`;
}

/**
 * Recording load benchmark: writes a seeded synthetic recording of about 1M lines (65,536 hosts x
 * 16 epochs, a few open ports each, some services) to a temp file and times `loadRecording`.
 * Baseline in the same run: readline + JSON.parse of the same file with no validation or
 * building, so the ratio is the cost of validation and the compact columns. Sizes by env:
 *   PB_BENCH_LOAD_HOSTS (65536), PB_BENCH_LOAD_EPOCHS (16), PB_BENCH_LOAD_BASELINE (1; 0 skips it).
 */
export async function runRecordingLoadBenchmark(env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const hosts = Number(env.PB_BENCH_LOAD_HOSTS ?? 65536);
  const epochs = Number(env.PB_BENCH_LOAD_EPOCHS ?? 16);
  const rng = createRng('bench-recording-load');
  const dir = mkdtempSync(join(tmpdir(), 'pb-bench-recording-'));
  const mib = (bytes: number): string => (bytes / 2 ** 20).toFixed(0);
  try {
    const path = join(dir, 'load.ndjson');
    const hostTags = Array.from({ length: hosts }, () => TAGS[rng.int(TAGS.length)]!);
    const writer = await RecordingWriter.open(path, { name: 'bench-load', probed: '1-65535' });
    let t = performance.now();
    for (let e = 0; e < epochs; e++) {
      for (let h = 0; h < hosts; h++) {
        const open = new Set<number>();
        const n = Math.floor(-Math.log(1 - rng.next()) * 2.5); // exponential, mean ~2.5 ports
        for (let k = 0; k < n; k++) open.add(rng.next() < 0.8 ? POPULAR[rng.int(POPULAR.length)]! : 1 + rng.int(65535));
        const obs: { -readonly [K in keyof Observation]: Observation[K] } = {
          epoch: e,
          ip: benchIp(h),
          tags: hostTags[h]!,
          open: [...open].sort((a, b) => a - b),
        };
        if (open.has(22) && rng.next() < 0.5) obs.services = { '22': 'ssh' };
        await writer.write(obs);
      }
    }
    await writer.close();
    const lines = hosts * epochs;
    const bytes = statSync(path).size;
    console.log(`recording-load: wrote ${lines} lines, ${mib(bytes)} MiB in ${((performance.now() - t) / 1000).toFixed(1)} s`);

    const before = process.memoryUsage();
    t = performance.now();
    const rec = await loadRecording(path);
    const seconds = (performance.now() - t) / 1000;
    const after = process.memoryUsage();
    const peakMiB = process.resourceUsage().maxRSS / 1024;
    const columnBytes =
      rec.obsEpoch.byteLength +
      rec.obsHost.byteLength +
      rec.obsTagSet.byteLength +
      rec.obsProbed.byteLength +
      rec.openStart.byteLength +
      rec.openPorts.byteLength +
      rec.epochStart.byteLength;
    console.log(
      `recording-load: loadRecording ${rec.size} observations (${rec.hostIp.length} hosts, ${rec.epochs} epochs, ${rec.openPorts.length} open ports) in ${seconds.toFixed(2)} s: ` +
        `${Math.round(rec.size / seconds)} lines/s, ${(bytes / 2 ** 20 / seconds).toFixed(0)} MiB/s`,
    );
    console.log(
      `recording-load: columns ${mib(columnBytes)} MiB (${(columnBytes / rec.size).toFixed(1)} bytes/observation), services on ${rec.services.size} observations; ` +
        `RSS ${mib(before.rss)} -> ${mib(after.rss)} MiB, peak RSS ${peakMiB.toFixed(0)} MiB, heap ${mib(after.heapUsed)} MiB, array buffers ${mib(after.arrayBuffers)} MiB`,
    );
    if (env.PB_BENCH_LOAD_BASELINE === '0') return;

    t = performance.now();
    let parsed = 0;
    const input = createInterface({ input: createReadStream(path, { encoding: 'utf8', highWaterMark: 1 << 20 }), crlfDelay: Infinity });
    for await (const line of input) {
      if (line !== '' && JSON.parse(line) !== null) parsed++;
    }
    const baseSeconds = (performance.now() - t) / 1000;
    console.log(
      `recording-load: baseline readline + JSON.parse only: ${parsed} lines in ${baseSeconds.toFixed(2)} s, ${Math.round(parsed / baseSeconds)} lines/s; ` +
        `loadRecording costs ${(seconds / baseSeconds).toFixed(2)}x the baseline`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const invokedDirectly = process.argv[1] !== undefined && import.meta.url === new URL(`file://${realpathSync(process.argv[1])}`).href;
if (invokedDirectly) await runRecordingLoadBenchmark();
