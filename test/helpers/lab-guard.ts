import { labUnavailableReason, raiseLabGuard } from '../../src/lab/index.js';

/**
 * vitest globalSetup: as root, route all of 198.18.0.0/15 into a blackhole for the whole test run
 * (labs add their own, more specific route). A test that probes a lab address while no lab is up
 * then gets an error instead of sending packets off the machine.
 */
export default async function setup(): Promise<(() => Promise<void>) | undefined> {
  if ((await labUnavailableReason()) !== null) return undefined;
  return raiseLabGuard();
}
