import cliProgress from 'cli-progress';

/** Reports a run's progress to people (stderr); stdout stays for data. */
export interface ProgressReporter {
  start(total: number, cached: number): void;
  tick(done: number, label: string): void;
  stop(): void;
}

function formatSeconds(s: number): string {
  if (!Number.isFinite(s)) return '?';
  const m = Math.floor(s / 60);
  return m > 0 ? `${m}m${String(Math.round(s % 60)).padStart(2, '0')}s` : `${Math.round(s)}s`;
}

/** A bar on a terminal (cells done, ETA), plain lines otherwise (at most every ~2% or 15 s). */
export function createProgress(
  stream: NodeJS.WritableStream & { readonly isTTY?: boolean } = process.stderr,
  clock: () => number = () => performance.now(),
): ProgressReporter {
  if (stream.isTTY) {
    const bar = new cliProgress.SingleBar(
      { stream, format: 'cells {bar} {value}/{total} | {percentage}% | ETA {eta_formatted} | {label}', hideCursor: true, etaBuffer: 50 },
      cliProgress.Presets.shades_classic,
    );
    return {
      start: (total, cached) => bar.start(total, cached, { label: cached > 0 ? `${cached} cached` : '' }),
      tick: (done, label) => bar.update(done, { label }),
      stop: () => bar.stop(),
    };
  }
  let total = 0;
  let first = 0;
  let started = 0;
  let lastAt = 0;
  let lastDone = 0;
  return {
    start(t, cached) {
      total = t;
      first = cached;
      started = clock();
      lastAt = started;
      lastDone = cached;
      stream.write(`experiment: ${total} cells, ${cached} cached, ${total - cached} to run\n`);
    },
    tick(done, label) {
      const now = clock();
      const step = Math.max(1, Math.ceil(total / 50));
      if (done < total && done - lastDone < step && now - lastAt < 15_000) return;
      const rate = (done - first) / Math.max(1e-3, (now - started) / 1000);
      const eta = rate > 0 ? (total - done) / rate : Number.NaN;
      stream.write(
        `experiment: ${done}/${total} cells (${Math.floor((100 * done) / Math.max(1, total))}%), ETA ${formatSeconds(eta)}, last ${label}\n`,
      );
      lastAt = now;
      lastDone = done;
    },
    stop() {
      stream.write(`experiment: done in ${formatSeconds((clock() - started) / 1000)}\n`);
    },
  };
}

/** Reports nothing (library use, tests). */
export const silentProgress: ProgressReporter = { start: () => {}, tick: () => {}, stop: () => {} };
