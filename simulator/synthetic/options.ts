import { PortbanditError } from '../../src/core/index.js';
import { DEFAULT_PROFILE, getProfile, type ProfileName, type ProfileSpec } from './profiles.js';

/** Synthetic scopes live in 198.18.0.0/15 (RFC 2544 benchmarking space) and nowhere else. */
export const SYNTHETIC_NETWORK = '198.18.0.0/15';
/** Hosts are laid out sequentially from 198.18.0.0, so a scope holds at most a /15. */
export const MAX_SYNTHETIC_HOSTS = 131072;
/** Epochs are kept in 16-bit columns; the last value means "never ends". */
export const MAX_SYNTHETIC_EPOCHS = 10000;

/** What to generate. */
export interface GenerateOptions {
  /** A registered profile name; `enterprise` when omitted. */
  readonly profile?: ProfileName | string;
  readonly hosts: number;
  readonly epochs: number;
  /** The run seed: same seed, same bytes. */
  readonly seed: string | number;
}

/** Options after validation: frozen, with the profile looked up. */
export interface ResolvedGenerateOptions {
  readonly profileName: ProfileName;
  readonly profile: ProfileSpec;
  readonly hosts: number;
  readonly epochs: number;
  readonly seed: string;
}

function checkInteger(value: unknown, name: string, min: number, max: number, hint: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new PortbanditError('PB_ERR_SIMULATOR_OPTION', `expected an integer from ${min} to ${max}${hint}, got ${JSON.stringify(value)}`, {
      where: name,
    });
  }
  return value;
}

/** Validate generator options once, at the edge; throws PortbanditError naming the option. */
export function resolveGenerateOptions(options: GenerateOptions): ResolvedGenerateOptions {
  const profileName = (options.profile ?? DEFAULT_PROFILE) as string;
  const profile = getProfile(profileName, 'profile');
  const hosts = checkInteger(
    options.hosts,
    'hosts',
    1,
    MAX_SYNTHETIC_HOSTS,
    ` (synthetic hosts are laid out from 198.18.0.0 and must fit in ${SYNTHETIC_NETWORK})`,
  );
  const epochs = checkInteger(options.epochs, 'epochs', 1, MAX_SYNTHETIC_EPOCHS, '');
  if ((typeof options.seed !== 'string' && typeof options.seed !== 'number') || String(options.seed) === '') {
    throw new PortbanditError(
      'PB_ERR_SIMULATOR_OPTION',
      `expected a non-empty seed (string or number), got ${JSON.stringify(options.seed)}`,
      { where: 'seed' },
    );
  }
  return Object.freeze({ profileName: profileName as ProfileName, profile, hosts, epochs, seed: String(options.seed) });
}
