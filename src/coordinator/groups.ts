import { PortbanditError } from '../core/index.js';

/**
 * Agent groups (vantage points): an agent belongs to groups; a tag's policy may name the groups
 * allowed to scan the tag's hosts. Pure functions over names; the coordinator applies them when
 * it hands out work (docs/coordinator.md, "Agent groups").
 */

const GROUP = /^[A-Za-z0-9_.-]{1,64}$/u;

/** Most groups one agent or one policy may name. */
export const MAX_GROUPS = 64;

/** Validate one group name (letters, digits, `_ . -`, 1-64 characters). */
export function checkGroup(name: string, where: string): string {
  const g = typeof name === 'string' ? name.trim() : '';
  if (!GROUP.test(g))
    throw new PortbanditError('PB_ERR_GROUP', `expected a group name of letters, digits, "_.-" (1-64 chars), got ${JSON.stringify(name)}`, {
      where,
    });
  return g;
}

/** Validate a list of group names: trimmed, de-duplicated, sorted. */
export function checkGroups(names: readonly string[], where: string): string[] {
  if (names.length > MAX_GROUPS) throw new PortbanditError('PB_ERR_GROUP', `at most ${MAX_GROUPS} groups, got ${names.length}`, { where });
  return [...new Set(names.map((n, i) => checkGroup(n, `${where}[${i}]`)))].sort();
}

/** `internal,external` (CLI flags) as a checked list. */
export function parseGroupList(text: string, where: string): string[] {
  const parts = text
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  return checkGroups(parts, where);
}

/**
 * The groups allowed to scan a host with these tags: undefined = any agent. The rule for a host
 * whose tags name different groups: every tag's restriction holds at once, so the allowed set is
 * the INTERSECTION of the groups named by the policies of its tags (tags whose policy names no
 * groups do not restrict). An empty intersection means no agent may scan the host. When none of
 * its tags restricts, the default policy's groups apply (if it names any).
 */
export function allowedGroupsFor(
  tags: readonly string[],
  groupsOfTag: (tag: string) => readonly string[] | undefined,
  defaultGroups: readonly string[] | undefined,
): readonly string[] | undefined {
  let allowed: string[] | undefined;
  for (const tag of tags) {
    const named = groupsOfTag(tag);
    if (named === undefined) continue;
    allowed = allowed === undefined ? [...named] : allowed.filter((g) => named.includes(g));
  }
  return allowed ?? defaultGroups;
}

/** True when an agent of `agentGroups` may take work restricted to `allowed` (undefined = anyone). */
export function mayScan(agentGroups: readonly string[], allowed: readonly string[] | undefined): boolean {
  return allowed === undefined || agentGroups.some((g) => allowed.includes(g));
}

/**
 * The vantage point a visit is scanned from: the agent's first group (sorted) that the host
 * allows, or, for an unrestricted host, the agent's first group. Undefined for an agent without
 * groups.
 */
export function vantageGroup(agentGroups: readonly string[], allowed: readonly string[] | undefined): string | undefined {
  return allowed === undefined ? agentGroups[0] : agentGroups.find((g) => allowed.includes(g));
}
