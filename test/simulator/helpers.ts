import { PortCatalog } from '../../src/catalog/index.js';
import { type Observation, recordingFromObservations } from '../../src/recording/index.js';
import type { LoadedRecording } from '../../src/recording/types.js';
import { PortPicker } from '../../strategies/port-picker.js';
import { resolveCommonOptions, type CommonOptionsInput } from '../../strategies/options.js';
import type { BatchVerdict, Decision, HostResult, RoundContext, Strategy } from '../../strategies/types.js';

/** A tiny catalog (ports 1-10 by descending frequency) so tests do not depend on nmap's table. */
export const tinyCatalog = new PortCatalog(
  Array.from({ length: 10 }, (_, i) => ({ port: i + 1, name: `svc${i + 1}`, frequency: (10 - i) / 100 })),
  'test',
);

/** A recording from a header's optional fields and observations. */
export function makeRecording(observations: readonly Observation[], header: Record<string, unknown> = {}): LoadedRecording {
  return recordingFromObservations(
    { format: 'portbandit.recording', version: 1, name: 'test', probed: '1-65535', ...header },
    observations,
  );
}

/** What a scripted strategy saw when it chose ports for one host-epoch. */
export interface Seen {
  readonly ip: string;
  readonly epoch: number;
  readonly previousOpen: readonly number[];
  readonly previousEpoch: number;
  readonly prefix: string;
  readonly probeable: string;
  /** How many host results `observe` had received before this decision. */
  readonly observedBefore: number;
}

/**
 * A test-only strategy that probes `script[`${epoch}:${ip}`]` (or `script['*']`) through the
 * picker, and records what it was shown and what it was fed back.
 */
export function scriptedStrategy(script: Readonly<Record<string, readonly number[]>>, options: CommonOptionsInput = {}) {
  const resolved = resolveCommonOptions({ budget: 10, ...options });
  const seen: Seen[] = [];
  const observed: HostResult[] = [];
  const strategy: Strategy = {
    name: 'scripted',
    options: resolved,
    allowance: () => Math.min(resolved.budget, resolved.maxPerHost),
    select(round: RoundContext): Decision {
      seen.push({
        ip: round.ip,
        epoch: round.epoch,
        previousOpen: [...round.previousOpen],
        previousEpoch: round.previousEpoch,
        prefix: round.prefix,
        probeable: round.probeable.toString(),
        observedBefore: observed.length,
      });
      const picker = new PortPicker(round, resolved);
      picker.addAll(script[`${round.epoch}:${round.ip}`] ?? script['*'] ?? []);
      return { ports: picker.ports, followUp: false };
    },
    observe(results: readonly HostResult[]): BatchVerdict {
      observed.push(...results);
      return { learned: results.length, pseudo: 0, lossy: false };
    },
    state: () => ({}),
    explain: () => ({ strategy: 'scripted', groups: [], split: { mustHave: 0, fixed: 0, history: 0, learned: 0, exploration: 0 } }),
  };
  return { strategy, seen, observed };
}
