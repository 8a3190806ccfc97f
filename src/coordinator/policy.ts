import { PortbanditError } from '../core/errors.js';
import { isStrategyName } from '../../strategies/registry.js';
import { createStrategy, type StrategySpec } from '../../strategies/build.js';
import type { StrategyEnv } from '../../strategies/types.js';
import type { Preflight, ScanOptions } from './protocol.js';

/** A tag's scan policy: which strategy picks the ports, with what budget, and how nmap runs. */
export interface Policy extends StrategySpec {
  readonly strategy: string;
  readonly params: Readonly<Record<string, unknown>>;
  readonly budget: number;
  readonly maxPerHost?: number;
  readonly mustHave: readonly number[];
  readonly exclude: readonly number[];
  readonly pseudoThreshold?: number;
  readonly scan: ScanOptions;
}

/** The key of the default policy, which covers hosts none of whose tags has a policy. */
export const DEFAULT_POLICY_KEY = '';

/**
 * The strategy of a new installation: `adaptive` once it is registered, otherwise nmap's top
 * ports. (The adaptive strategy lands in strategies/registry.ts separately; no code change is
 * needed here when it does.)
 */
export function defaultStrategyName(): string {
  return isStrategyName('adaptive') ? 'adaptive' : 'top-k';
}

/** The default policy of a new installation. */
export function defaultPolicy(allowedScripts: readonly string[]): Policy {
  return {
    strategy: defaultStrategyName(),
    params: {},
    budget: 100,
    mustHave: [],
    exclude: [],
    scan: {
      versionDetection: true,
      scripts: allowedScripts.filter((s) => s === 'ssl-cert' || s === 'http-title'),
      hostTimeoutSeconds: 600,
      scriptTimeoutSeconds: 60,
      preflight: 'connect',
    },
  };
}

/** JSON schema of a policy body (PUT /api/v1/admin/policies/:tag). */
export const policySchema = {
  type: 'object',
  additionalProperties: false,
  required: ['strategy'],
  properties: {
    strategy: { type: 'string', maxLength: 64 },
    params: { type: 'object', maxProperties: 64 },
    budget: { type: 'number', minimum: 0, maximum: 65535 },
    maxPerHost: { type: 'integer', minimum: 1, maximum: 65535 },
    mustHave: { type: 'array', maxItems: 65535, items: { type: 'integer', minimum: 1, maximum: 65535 } },
    exclude: { type: 'array', maxItems: 65535, items: { type: 'integer', minimum: 1, maximum: 65535 } },
    pseudoThreshold: { type: 'integer', minimum: 1 },
    scan: {
      type: 'object',
      additionalProperties: false,
      properties: {
        versionDetection: { type: 'boolean' },
        scripts: { type: 'array', maxItems: 64, items: { type: 'string', maxLength: 64 } },
        hostTimeoutSeconds: { type: 'integer', minimum: 1, maximum: 86400 },
        scriptTimeoutSeconds: { type: 'integer', minimum: 1, maximum: 86400 },
        preflight: { type: 'string', enum: ['masscan', 'connect', 'none'] },
      },
    },
  },
} as const;

/** The raw body a policy is written with: like Policy, every field but `strategy` optional. */
export interface PolicyInput {
  strategy: string;
  params?: Record<string, unknown>;
  budget?: number;
  maxPerHost?: number;
  mustHave?: number[];
  exclude?: number[];
  pseudoThreshold?: number;
  scan?: Partial<ScanOptions>;
}

/**
 * Validate a policy completely (building the strategy once, so a bad parameter fails now and
 * not at the first work request). Missing fields come from `base` (the default policy).
 */
export function resolvePolicy(input: PolicyInput, base: Policy, env: StrategyEnv, allowedScripts: readonly string[], where: string): Policy {
  const scan: ScanOptions = {
    versionDetection: input.scan?.versionDetection ?? base.scan.versionDetection,
    scripts: [...new Set(input.scan?.scripts ?? base.scan.scripts)],
    hostTimeoutSeconds: input.scan?.hostTimeoutSeconds ?? base.scan.hostTimeoutSeconds,
    scriptTimeoutSeconds: input.scan?.scriptTimeoutSeconds ?? base.scan.scriptTimeoutSeconds,
    preflight: (input.scan?.preflight ?? base.scan.preflight) as Preflight,
  };
  const notAllowed = scan.scripts.find((s) => !allowedScripts.includes(s));
  if (notAllowed !== undefined) {
    throw new PortbanditError('PB_ERR_INVALID_ARGUMENT', `NSE script "${notAllowed}" is not in the server's allowlist (${allowedScripts.join(', ')})`, {
      where: `${where}.scan.scripts`,
    });
  }
  const policy: Policy = {
    strategy: input.strategy,
    params: { ...(input.params ?? {}) },
    budget: input.budget ?? base.budget,
    ...(input.maxPerHost !== undefined ? { maxPerHost: input.maxPerHost } : {}),
    mustHave: [...(input.mustHave ?? [])],
    exclude: [...(input.exclude ?? [])],
    ...(input.pseudoThreshold !== undefined ? { pseudoThreshold: input.pseudoThreshold } : {}),
    scan,
  };
  try {
    createStrategy(policy, env);
  } catch (error) {
    if (error instanceof PortbanditError) throw new PortbanditError(error.code, error.message, { where, cause: error });
    throw error;
  }
  return policy;
}

/**
 * The policy key for a host: its first tag (in sorted order) that has a policy, else the
 * default. Documented in docs/coordinator.md: a host carries several tags; one policy decides.
 */
export function policyKeyFor(tags: readonly string[], has: (key: string) => boolean): string {
  for (const t of tags) if (has(t)) return t;
  return DEFAULT_POLICY_KEY;
}
