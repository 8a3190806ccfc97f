import { defineConfig } from 'vitest/config';

/** Test files that build the network-namespace lab (root, one lab per machine). */
const LAB_FILES = ['test/lab/lab.test.ts', 'test/lab/closed-drop.test.ts', 'test/e2e/**/*.test.ts'];

/** What both projects share (not `extends: true`: the lab guard below is set up once per run, not per project). */
const shared = { testTimeout: 30_000, hookTimeout: 60_000, pool: 'forks' } as const;

export default defineConfig({
  test: {
    // As root: 198.18.0.0/15 is blackholed for the whole run (see the file).
    globalSetup: ['test/helpers/lab-guard.ts'],
    projects: [
      {
        // Everything but the lab, two files at a time on the 2-core machine (`npm run test:fast` runs only this).
        test: { ...shared, name: 'unit', include: ['test/**/*.test.ts'], exclude: LAB_FILES, maxWorkers: 2 },
      },
      {
        // The lab is one per machine: its files take turns in one worker of their own, which mostly
        // waits on the network, beside the unit files (before, a lab file waiting for the lab's
        // lock held one of the two workers).
        test: { ...shared, name: 'lab', include: LAB_FILES, fileParallelism: false },
      },
    ],
  },
});
