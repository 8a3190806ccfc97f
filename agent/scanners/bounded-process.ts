import { setPriority } from 'node:os';
import { execa } from 'execa';
import { PortbanditError } from '../../src/core/index.js';

/** Largest delay a Node timer takes exactly. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** Limits every child process the agent starts. */
export interface ProcessBounds {
  /** Kill the process after this many milliseconds. */
  readonly timeoutMs: number;
  /** Kill it once stdout (or stderr) exceeds this many bytes. */
  readonly maxOutputBytes: number;
  /** Abort from outside (shutdown). */
  readonly signal?: AbortSignal;
  /**
   * Niceness of the process (0-19; absent: the agent's own). A lower priority keeps CPU-heavy
   * start-ups (dozens of nmap -sV processes loading their probe files at once) from starving the
   * agent's event loop and masscan's packet threads.
   */
  readonly nice?: number;
}

export interface ProcessResult {
  readonly stdout: string;
  readonly stderr: string;
  readonly exitCode: number;
  readonly durationMs: number;
}

/**
 * Run a scanner with an argument array (never a shell), bounded by a timeout and an output size
 * limit. Anything but a clean exit is a PB_ERR_SCANNER naming the tool and why.
 */
export async function runBounded(file: string, args: readonly string[], bounds: ProcessBounds): Promise<ProcessResult> {
  // Node clamps a timer above 2^31-1 ms to 1 ms: an overflowing bound would kill at once (or,
  // worse, a NaN would disable it). Refuse instead.
  if (!Number.isFinite(bounds.timeoutMs) || bounds.timeoutMs < 1 || bounds.timeoutMs > MAX_TIMER_MS) {
    throw new PortbanditError('PB_ERR_SCAN_OPTION', `a ${file} timeout of ${bounds.timeoutMs} ms is outside 1-${MAX_TIMER_MS} ms`, {
      where: file,
    });
  }
  if (bounds.nice !== undefined && (!Number.isInteger(bounds.nice) || bounds.nice < 0 || bounds.nice > 19)) {
    throw new PortbanditError('PB_ERR_SCAN_OPTION', `a ${file} niceness of ${bounds.nice} is outside 0-19`, { where: file });
  }
  const started = performance.now();
  const child = execa(file, args, {
    reject: false,
    timeout: bounds.timeoutMs,
    maxBuffer: bounds.maxOutputBytes,
    stdin: 'ignore',
    killSignal: 'SIGKILL',
    ...(bounds.signal ? { cancelSignal: bounds.signal } : {}),
  });
  if (bounds.nice !== undefined && bounds.nice > 0 && child.pid !== undefined) {
    try {
      setPriority(child.pid, bounds.nice);
    } catch {
      // Already gone (it exits on its own terms), or not ours to renice: it runs at our priority.
    }
  }
  const result = await child;
  const durationMs = performance.now() - started;
  const where = file;
  if (result.timedOut)
    throw new PortbanditError('PB_ERR_SCANNER', `${file} did not finish within ${bounds.timeoutMs} ms and was killed`, { where });
  if (result.isMaxBuffer)
    throw new PortbanditError('PB_ERR_SCANNER', `${file} wrote more than ${bounds.maxOutputBytes} bytes of output and was killed`, {
      where,
    });
  if (result.isCanceled) throw new PortbanditError('PB_ERR_SCANNER', `${file} was cancelled (shutdown)`, { where });
  if (result.code === 'ENOENT')
    throw new PortbanditError('PB_ERR_SCANNER', `${file} is not installed (apt-get install nmap masscan)`, { where });
  if (result.failed && result.exitCode === undefined) {
    throw new PortbanditError('PB_ERR_SCANNER', `${file} could not run: ${result.shortMessage}`, { where });
  }
  if (result.exitCode !== 0) {
    const tail = String(result.stderr ?? '')
      .trim()
      .split('\n')
      .slice(-3)
      .join(' | ');
    throw new PortbanditError('PB_ERR_SCANNER', `${file} exited with code ${result.exitCode}: ${tail}`, { where });
  }
  return { stdout: String(result.stdout ?? ''), stderr: String(result.stderr ?? ''), exitCode: result.exitCode ?? 0, durationMs };
}
