// A child process for the lab lock tests. `hold LOG`: take the lab's lock, note enter/leave
// around a pause in LOG, let go. `die`: take the lock and exit without letting go. `try [N]`:
// exit 0 when lab N's lock (default 0) can be had within 1 s, 3 when another process keeps it.
import { appendFileSync } from 'node:fs';
import { labLock } from '../../src/lab/lab.js';

const [mode, log] = process.argv.slice(2);
if (mode === 'try') {
  try {
    await labLock.acquire({ waitMs: 1000, instance: Number(log ?? 0) });
  } catch {
    process.exit(3);
  }
  labLock.release();
  process.exit(0);
}
await labLock.acquire({ waitMs: mode === 'die' ? 1000 : 60_000 });
if (mode === 'die') process.exit(0);
appendFileSync(log!, `enter ${process.pid}\n`);
await new Promise((r) => setTimeout(r, 150));
appendFileSync(log!, `leave ${process.pid}\n`);
labLock.release();
