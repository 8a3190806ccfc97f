import type { PortPicker } from './port-picker.js';
import type { HostResult, ParameterSpec, RoundContext } from './types.js';

/**
 * Re-verification, shared by every learning strategy: a host's first round opens with the ports it
 * had open at its last visit (at most `historyCap` of them, so a pseudo-service host answering on
 * thousands of ports cannot eat the allowance). A learner that ranked a host's rare open port below
 * its budget would otherwise never probe it again: the port would stay "known open" and its closing
 * would never be seen. Baselines (fixed, top-k, random) probe their own lists only.
 */

/** The parameter every learning strategy takes: how many previously open ports are re-verified first. */
export const historyCapParameter: ParameterSpec = Object.freeze({
  name: 'historyCap',
  type: 'integer',
  default: 32,
  min: 0,
  max: 65535,
  description:
    "Previously open ports of a host re-verified first each epoch (at most this many; a pseudo-service host's history is capped).",
});

/** The ports of a host's last visit to re-verify this epoch (the first `cap`; none after round 0). */
export function historyOf(round: RoundContext, cap: number): readonly number[] {
  if (round.round > 0) return [];
  return round.previousOpen.length <= cap ? round.previousOpen : round.previousOpen.slice(0, cap);
}

/** How many of a result's previously open ports its visit probed again (explain's `history` share). */
export function reverifiedCount(result: HostResult): number {
  let n = 0;
  for (const p of result.previousOpen) if (result.probed.indexOf(p) >= 0) n++;
  return n;
}

/** Add a host's history to a decision (after its must-have ports); returns how many were added. */
export function addHistory(picker: PortPicker, round: RoundContext, cap: number): number {
  return picker.addAll(historyOf(round, cap));
}
