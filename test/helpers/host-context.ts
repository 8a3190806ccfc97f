import { hostPrefix } from '../../src/core/host-prefix.js';
import { PortRanges } from '../../src/core/ports.js';
import type { HostContext } from '../../strategies/types.js';

/**
 * A host seen for the first time (no history, every port probeable), with any field overridden.
 * The prefix follows the address unless given.
 */
export function hostContext(overrides: Partial<HostContext> = {}): HostContext {
  const ip = overrides.ip ?? '198.18.0.10';
  return {
    ip,
    tags: ['dmz'],
    prefix: hostPrefix(ip),
    epoch: 0,
    previousOpen: [],
    previousEpoch: -1,
    probeable: PortRanges.ALL,
    ...overrides,
  };
}
