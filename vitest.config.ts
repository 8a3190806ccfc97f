import { defineConfig } from 'vitest/config';

/** Test files that build the network-namespace lab (root, one lab per machine). */
const LAB_FILES = ['test/lab/lab.test.ts', 'test/lab/closed-drop.test.ts', 'test/e2e/**/*.test.ts'];

/** What both projects share (not `extends: true`: the lab guard below is set up once per run, not per project). */
/**
 * A time-out catches a hang, not slowness: CI runs the unit files beside lint, the type-check and the
 * lab on 2 cores, where a test that takes 2 s alone took 11-13 s (a property test reopening stores).
 */
const shared = { testTimeout: 60_000, hookTimeout: 60_000, pool: 'forks' } as const;

export default defineConfig({
  test: {
    // As root: 198.18.0.0/15 is blackholed for the whole run (see the file).
    globalSetup: ['test/helpers/lab-guard.ts'],
    // Two files at a time on the 2-core machine.
    maxWorkers: 2,
    projects: [
      // Everything but the lab (`npm run test:fast` runs only this). `isolate: false`: each of the two
      // workers runs file after file in one process and imports fastify, pg, playwright-core, the
      // store... once, not once per file (module import summed over the files was ~300 s of the
      // unit run's CPU). A file that changes process-wide state (env, timers, cwd) restores it.
      // One throwaway PostgreSQL for the run (test/helpers/postgres-global.ts), each store in a schema of its own.
      {
        test: {
          ...shared,
          name: 'unit',
          include: ['test/**/*.test.ts'],
          exclude: LAB_FILES,
          isolate: false,
          globalSetup: ['test/helpers/postgres-global.ts'],
        },
      },
      // Two labs can be up at once (src/lab/topology.ts, instances 0 and 1): the lab files run two
      // at a time, each taking whichever lab is free (`labUp({ instance: 'any' })`, which waits
      // while both are taken). `npm test` (scripts/test.mjs) starts this project as a vitest
      // process of its own beside the unit run, so that its waiting on the network overlaps the
      // unit files' CPU.
      { test: { ...shared, name: 'lab', include: LAB_FILES } },
    ],
  },
});
