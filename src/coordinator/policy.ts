import { PortbanditError } from '../core/index.js';
import { checkGroups } from './groups.js';
import { type RetentionRule, checkRetention, retentionSchema } from './retention.js';
import { isStrategyName, createStrategy, type StrategySpec, type StrategyEnv } from '../../strategies/index.js';
import type { FromSchema } from 'json-schema-to-ts';
import type { PreflightRequest, ScanOptions } from '../protocol/index.js';

/**
 * A tag's scan policy: which strategy picks the ports, with what budget, and how nmap runs.
 *
 * The budget is stated one of two ways. `budget` alone: probes per host-visit. `rate` (packets
 * per second the whole fleet may spend on this tag, on average over the cycle period): the
 * coordinator derives the per-visit budget from the tag's address count and `periodSeconds`
 * (`budgetFor`), so a small scope gets full-port sweeps every cycle and a /16 a learned subset.
 * `periodSeconds` also paces the cycle: a cycle does not restart before its period.
 */
export interface Policy extends StrategySpec {
  readonly strategy: string;
  readonly params: Readonly<Record<string, unknown>>;
  readonly budget: number;
  /** Probes per second the fleet may spend on this tag on average (derives `budget`). */
  readonly rate?: number;
  /** Cycle period in seconds: the time one pass over the scope may take, and no less. */
  readonly periodSeconds?: number;
  readonly maxPerHost?: number;
  readonly mustHave: readonly number[];
  readonly exclude: readonly number[];
  readonly pseudoThreshold?: number;
  readonly scan: ScanOptions;
  /** Agent groups allowed to scan this tag's hosts (absent: any agent). See groups.ts. */
  readonly groups?: readonly string[];
  /** History retention of the tag's visits (absent: the default policy's; `{}` keeps all). See retention.ts. */
  readonly retention?: RetentionRule;
  /**
   * Service detection on a port that was silent at its last visit (open, no answer to -sV within
   * the time-out) runs again only in cycles whose number is a multiple of this, and in manual
   * rescans; 1 runs it every visit. Absent: DEFAULT_SILENT_RECHECK_CYCLES.
   */
  readonly silentRecheckCycles?: number;
}

/**
 * Cycles between -sV runs on a port silent at its last visit (Policy.silentRecheckCycles): a
 * silent service costs a whole -sV time-out (30 s by default) each time it is looked at.
 */
export const DEFAULT_SILENT_RECHECK_CYCLES = 4;

/**
 * Whether a round of `cycle` runs -sV on ports silent at the host's last visit: every round when
 * the policy says 1 or does no service detection, a manual rescan always, otherwise the cycles
 * whose number is a multiple of the policy's `silentRecheckCycles`.
 */
export function rechecksSilent(policy: Pick<Policy, 'silentRecheckCycles' | 'scan'>, cycle: number, manual: boolean): boolean {
  const every = policy.silentRecheckCycles ?? DEFAULT_SILENT_RECHECK_CYCLES;
  return manual || every <= 1 || !policy.scan.versionDetection || cycle % every === 0;
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

/** The NSE scripts of the default policy; also what an agent allows unless told otherwise. */
export const DEFAULT_SCRIPTS = ['ssl-cert', 'http-title'] as const;

/** Default cycle period (24 h) and fleet probe rate of a new installation's default policy. */
export const DEFAULT_PERIOD_SECONDS = 86_400;
export const DEFAULT_RATE = 1000;

/** Most probes one host-visit can use: every TCP port. */
export const ALL_PORTS = 65_535;

/** The default policy of a new installation. */
export function defaultPolicy(allowedScripts: readonly string[]): Policy {
  return {
    strategy: defaultStrategyName(),
    params: {},
    budget: 100,
    rate: DEFAULT_RATE,
    periodSeconds: DEFAULT_PERIOD_SECONDS,
    mustHave: [],
    exclude: [],
    scan: {
      versionDetection: true,
      scripts: allowedScripts.filter((s) => (DEFAULT_SCRIPTS as readonly string[]).includes(s)),
      // nmap -sV runs per open port, each bounded by this: a silent service costs this much, not
      // minutes, and a time-out keeps the port open (only its service detail is unknown).
      hostTimeoutSeconds: 30,
      scriptTimeoutSeconds: 20,
      versionIntensity: 7,
      preflight: 'auto',
    },
  };
}

/**
 * The per-visit budget a policy gives a host when its tag has `addresses` addresses: `budget`
 * itself, or with a `rate`, rate x period / addresses (at least 1, at most every port).
 */
export function budgetFor(policy: Pick<Policy, 'budget' | 'rate' | 'periodSeconds'>, addresses: number): number {
  if (policy.rate === undefined) return policy.budget;
  const period = policy.periodSeconds ?? DEFAULT_PERIOD_SECONDS;
  const perHost = (policy.rate * period) / Math.max(1, addresses);
  return Math.max(1, Math.min(ALL_PORTS, Math.floor(perHost)));
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
    // null removes the value (a policy without a rate states probes per visit; without a period, cycles run back to back)
    rate: { type: ['number', 'null'], exclusiveMinimum: 0, maximum: 100_000_000 },
    periodSeconds: { type: ['integer', 'null'], minimum: 1, maximum: 366 * 86400 },
    maxPerHost: { type: 'integer', minimum: 1, maximum: 65535 },
    mustHave: { type: 'array', maxItems: 65535, items: { type: 'integer', minimum: 1, maximum: 65535 } },
    exclude: { type: 'array', maxItems: 65535, items: { type: 'integer', minimum: 1, maximum: 65535 } },
    pseudoThreshold: { type: 'integer', minimum: 1 },
    // null or absent: any agent may scan the tag
    groups: { type: ['array', 'null'], minItems: 1, maxItems: 64, items: { type: 'string', maxLength: 64 } },
    // null or absent: the default policy's retention applies
    retention: { anyOf: [retentionSchema, { type: 'null' }] },
    // absent: the default policy's value, else DEFAULT_SILENT_RECHECK_CYCLES
    silentRecheckCycles: { type: 'integer', minimum: 1, maximum: 10000 },
    scan: {
      type: 'object',
      additionalProperties: false,
      properties: {
        versionDetection: { type: 'boolean' },
        scripts: { type: 'array', maxItems: 64, items: { type: 'string', maxLength: 64 } },
        hostTimeoutSeconds: { type: 'integer', minimum: 1, maximum: 86400 },
        scriptTimeoutSeconds: { type: 'integer', minimum: 1, maximum: 86400 },
        preflight: { type: 'string', enum: ['auto', 'masscan', 'connect', 'none'] },
        versionIntensity: { type: 'integer', minimum: 0, maximum: 9 },
      },
    },
  },
} as const;

/**
 * The raw body a policy is written with (PUT /api/v1/admin/policies/:tag), as its schema says:
 * like Policy, every field but `strategy` optional; `rate`, `periodSeconds`, `groups` and
 * `retention` take null to remove the value.
 */
export type PolicyInput = FromSchema<typeof policySchema>;

/**
 * Validate a policy completely (building the strategy once, so a bad parameter fails now and
 * not at the first work request). Missing fields come from `base` (the default policy).
 */
export function resolvePolicy(
  input: PolicyInput,
  base: Policy,
  env: StrategyEnv,
  allowedScripts: readonly string[],
  where: string,
): Policy {
  const scan: ScanOptions = {
    versionDetection: input.scan?.versionDetection ?? base.scan.versionDetection,
    scripts: [...new Set(input.scan?.scripts ?? base.scan.scripts)],
    hostTimeoutSeconds: input.scan?.hostTimeoutSeconds ?? base.scan.hostTimeoutSeconds,
    scriptTimeoutSeconds: input.scan?.scriptTimeoutSeconds ?? base.scan.scriptTimeoutSeconds,
    preflight: (input.scan?.preflight ?? base.scan.preflight) as PreflightRequest,
    ...((input.scan?.versionIntensity ?? base.scan.versionIntensity) !== undefined
      ? { versionIntensity: (input.scan?.versionIntensity ?? base.scan.versionIntensity)! }
      : {}),
  };
  const notAllowed = scan.scripts.find((s) => !allowedScripts.includes(s));
  if (notAllowed !== undefined) {
    throw new PortbanditError(
      'PB_ERR_SCRIPT_NOT_ALLOWED',
      `NSE script "${notAllowed}" is not in the server's allowlist (${allowedScripts.join(', ')})`,
      {
        where: `${where}.scan.scripts`,
      },
    );
  }
  // A policy that states a budget and no rate means probes per host: it does not inherit the
  // default's rate. One that states neither inherits both.
  const rate = input.rate === null ? undefined : (input.rate ?? (input.budget === undefined ? base.rate : undefined));
  const periodSeconds = input.periodSeconds === null ? undefined : (input.periodSeconds ?? base.periodSeconds);
  const policy: Policy = {
    strategy: input.strategy,
    params: { ...(input.params ?? {}) },
    budget: input.budget ?? base.budget,
    ...(rate !== undefined ? { rate } : {}),
    ...(periodSeconds !== undefined ? { periodSeconds } : {}),
    ...(input.maxPerHost !== undefined ? { maxPerHost: input.maxPerHost } : {}),
    mustHave: [...(input.mustHave ?? [])],
    exclude: [...(input.exclude ?? [])],
    ...(input.pseudoThreshold !== undefined ? { pseudoThreshold: input.pseudoThreshold } : {}),
    scan,
    ...policyGroups(input.groups, `${where}.groups`),
    ...(input.retention !== undefined && input.retention !== null
      ? { retention: checkRetention(input.retention, `${where}.retention`) }
      : {}),
    ...((input.silentRecheckCycles ?? base.silentRecheckCycles) !== undefined
      ? { silentRecheckCycles: (input.silentRecheckCycles ?? base.silentRecheckCycles)! }
      : {}),
  };
  try {
    createStrategy(policy, env);
  } catch (error) {
    if (error instanceof PortbanditError) throw new PortbanditError(error.code, error.message, { where, cause: error });
    throw error;
  }
  return policy;
}

/** The `groups` field of a resolved policy: absent for none, refused when empty. */
function policyGroups(groups: readonly string[] | null | undefined, where: string): { groups?: readonly string[] } {
  if (groups === undefined || groups === null) return {};
  if (groups.length === 0) throw new PortbanditError('PB_ERR_GROUP', 'name at least one agent group, or null for any agent', { where });
  return { groups: checkGroups(groups, where) };
}

/**
 * The policy key for a host: its first tag (in sorted order) that has a policy, else the
 * default. Documented in docs/coordinator.md: a host carries several tags; one policy decides.
 */
export function policyKeyFor(tags: readonly string[], has: (key: string) => boolean): string {
  for (const t of tags) if (has(t)) return t;
  return DEFAULT_POLICY_KEY;
}
