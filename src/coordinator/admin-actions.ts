import { parseServicesFile, tcpPorts } from '../catalog/index.js';
import type { ScopeListName } from '../store/index.js';
import type { RescanOutcome } from './leasing.js';
import { type AlertRule, addAlertRule, removeAlertRule } from './alerts.js';
import { type AuditAction, type AuditActor, recordAudit } from './audit.js';
import { type Coordinator, rangesOfSorted } from './coordinator.js';
import { DEFAULT_POLICY_KEY, type Policy, type PolicyInput } from './policy.js';
import type { RetentionRule } from './retention.js';
import type { ScopeLine } from './scope-file.js';

/** How a policy key reads in the audit log and on pages. */
export function policyLabel(key: string): string {
  return key === DEFAULT_POLICY_KEY ? '(default)' : key;
}

/** A few items of a list for a summary: "a, b, c and 97 more". */
export function summarize(items: readonly string[], shown = 5): string {
  if (items.length <= shown) return items.join(', ');
  return `${items.slice(0, shown).join(', ')} and ${items.length - shown} more`;
}

/** A retention rule in words: `last 10, 90 d, daily after 7 d, weekly after 30 d`, or `keep all`. */
export function describeRetention(rule: RetentionRule): string {
  const parts: string[] = [];
  if (rule.keepLast !== undefined) parts.push(`last ${rule.keepLast}`);
  if (rule.keepDays !== undefined) parts.push(`${rule.keepDays} d`);
  if (rule.dailyAfterDays !== undefined) parts.push(`daily after ${rule.dailyAfterDays} d`);
  if (rule.weeklyAfterDays !== undefined) parts.push(`weekly after ${rule.weeklyAfterDays} d`);
  return parts.length > 0 ? parts.join(', ') : 'keep all';
}

function describeLines(lines: readonly ScopeLine[]): string {
  return summarize(lines.map((l) => (l.tags.length > 0 ? `${l.range} [${l.tags.join(' ')}]` : l.range)));
}

function describePolicy(p: Policy): string {
  const parts = [`strategy ${p.strategy}`, p.rate !== undefined ? `rate ${p.rate}/s` : `budget ${p.budget}`];
  if (p.periodSeconds !== undefined) parts.push(`period ${p.periodSeconds} s`);
  if (p.mustHave.length > 0) parts.push(`must-have ${rangesOfSorted([...p.mustHave].sort((a, b) => a - b))}`);
  if (p.exclude.length > 0) parts.push(`exclude ${rangesOfSorted([...p.exclude].sort((a, b) => a - b))}`);
  parts.push(`scripts ${p.scan.scripts.length > 0 ? p.scan.scripts.join(' ') : 'none'}`);
  if (p.groups !== undefined) parts.push(`groups ${p.groups.join(' ')}`);
  if (p.retention !== undefined) parts.push(`retention ${describeRetention(p.retention)}`);
  return parts.join(', ');
}

function clonePolicy(p: Policy): PolicyInput {
  return JSON.parse(JSON.stringify(p)) as PolicyInput;
}

/**
 * Every change an operator can make, through the admin API or the UI alike: each calls the
 * Coordinator (which validates before it writes, so a refused change changes nothing) and then
 * records who did what in the audit log. Nothing is audited for a change that did not happen.
 */
export class AdminActions {
  constructor(readonly coordinator: Coordinator) {}

  private async audit(actor: AuditActor, action: AuditAction, target: string, summary: string): Promise<void> {
    await recordAudit(this.coordinator.store, { at: this.coordinator.now(), actor, action, target, summary });
  }

  /** Add (or re-tag) entries of the scope or blocklist. */
  async addScope(actor: AuditActor, list: ScopeListName, lines: readonly ScopeLine[]): Promise<number> {
    const version = await this.coordinator.addScope(list, lines);
    await this.audit(actor, 'scope.add', list, `added ${lines.length} entr${lines.length === 1 ? 'y' : 'ies'}: ${describeLines(lines)}`);
    return version;
  }

  async removeScope(actor: AuditActor, list: ScopeListName, ranges: readonly string[]): Promise<{ removed: number; version: number }> {
    const out = await this.coordinator.removeScope(list, ranges);
    if (out.removed > 0)
      await this.audit(actor, 'scope.remove', list, `removed ${out.removed} entr${out.removed === 1 ? 'y' : 'ies'}: ${summarize(ranges)}`);
    return out;
  }

  /** Import parsed lines: added to the list, or replacing it entirely. */
  async importScope(actor: AuditActor, list: ScopeListName, lines: readonly ScopeLine[], replace: boolean): Promise<number> {
    const version = replace ? await this.coordinator.replaceScope(list, lines) : await this.coordinator.addScope(list, lines);
    await this.audit(
      actor,
      replace ? 'scope.replace' : 'scope.import',
      list,
      `${replace ? 'replaced the list with' : 'imported'} ${lines.length} entr${lines.length === 1 ? 'y' : 'ies'}${lines.length > 0 ? `: ${describeLines(lines)}` : ''}`,
    );
    return version;
  }

  async setPolicy(actor: AuditActor, key: string, input: PolicyInput): Promise<Policy> {
    const policy = await this.coordinator.setPolicy(key, input);
    await this.audit(actor, 'policy.set', policyLabel(key), describePolicy(policy));
    return policy;
  }

  /**
   * A Natlas services file for a tag's policy: the port list of a `fixed` policy, otherwise its
   * must-have ports. A policy that does not exist yet starts from the default policy.
   */
  async uploadServices(actor: AuditActor, key: string, text: string, source = 'services'): Promise<Policy> {
    const ports = tcpPorts(parseServicesFile(text, source));
    const current = this.coordinator.policy(key) ?? this.coordinator.defaultPolicy;
    const { periodSeconds: _period, ...base } = clonePolicy(current);
    const input: PolicyInput =
      current.strategy === 'fixed'
        ? {
            ...(key === DEFAULT_POLICY_KEY ? clonePolicy(current) : base),
            params: { ...current.params, ports },
            budget: Math.max(current.budget, ports.length),
          }
        : { ...(key === DEFAULT_POLICY_KEY ? clonePolicy(current) : base), mustHave: ports };
    const policy = await this.coordinator.setPolicy(key, input);
    await this.audit(
      actor,
      'policy.services',
      policyLabel(key),
      `${ports.length} TCP port(s) from a services file as ${current.strategy === 'fixed' ? 'the fixed port list' : 'must-have ports'}`,
    );
    return policy;
  }

  async deletePolicy(actor: AuditActor, key: string): Promise<boolean> {
    const existed = await this.coordinator.deletePolicy(key);
    if (existed)
      await this.audit(actor, 'policy.delete', policyLabel(key), 'policy removed (hosts fall back to the default; learned state kept)');
    return existed;
  }

  async createAgent(
    actor: AuditActor,
    name: string,
    groups: readonly string[] = [],
  ): Promise<{ id: string; name: string; groups: string[]; token: string }> {
    const { agent, token } = await this.coordinator.createAgent(name, groups);
    const inGroups = [...this.coordinator.groupsOf(agent.id)];
    await this.audit(
      actor,
      'agent.create',
      agent.id,
      `agent ${JSON.stringify(agent.name)} registered${inGroups.length > 0 ? ` in group(s) ${inGroups.join(',')}` : ''}`,
    );
    return { id: agent.id, name: agent.name, groups: inGroups, token };
  }

  async setAgentGroups(actor: AuditActor, id: string, groups: readonly string[]): Promise<string[]> {
    const now = await this.coordinator.setAgentGroups(id, groups);
    await this.audit(actor, 'agent.groups', id, now.length > 0 ? `agent groups set to ${now.join(',')}` : 'agent groups removed');
    return now;
  }

  /** Record a retention pass an admin ran (the pass itself is the RetentionRunner's). */
  async recordRetentionRun(actor: AuditActor, done: { hosts: number; kept: number; dropped: number }): Promise<void> {
    await this.audit(
      actor,
      'retention.run',
      'history',
      `retention pass: ${done.dropped} visit(s) dropped, ${done.kept} kept over ${done.hosts} host(s)`,
    );
  }

  async deleteAgent(actor: AuditActor, id: string): Promise<{ deleted: boolean; released: number }> {
    const agent = (await this.coordinator.store.listAgents()).find((a) => a.id === id);
    const done = await this.coordinator.deleteAgent(id);
    if (done.deleted) {
      const given = done.released > 0 ? `; its ${done.released} lease(s) went back to the queue` : '';
      await this.audit(actor, 'agent.delete', id, `agent ${JSON.stringify(agent?.name ?? id)} removed (its token stops working)${given}`);
    }
    return done;
  }

  async createAdminToken(actor: AuditActor, name: string): Promise<{ id: string; name: string; token: string; createdAt: number }> {
    const t = await this.coordinator.createAdminToken(name);
    await this.audit(actor, 'token.create', t.id, `admin token ${JSON.stringify(t.name)} created`);
    return t;
  }

  async revokeAdminToken(actor: AuditActor, id: string): Promise<boolean> {
    const token = (await this.coordinator.store.listAdminTokens()).find((t) => t.id === id);
    const existed = await this.coordinator.store.deleteAdminToken(id);
    if (existed)
      await this.audit(
        actor,
        'token.revoke',
        id,
        `admin token ${JSON.stringify(token?.name ?? id)} revoked${id === actor.id ? ' (its own)' : ''}`,
      );
    return existed;
  }

  async rescan(actor: AuditActor, ips: readonly string[]): Promise<RescanOutcome> {
    const outcome = await this.coordinator.requestRescan(ips);
    const { queued, scanning } = outcome;
    const count = queued.length + scanning.length;
    await this.audit(
      actor,
      'host.rescan',
      count === 1 ? (queued[0]?.ip ?? scanning[0]!) : `${count} hosts`,
      [
        ...(queued.length > 0 ? [`manual rescan queued: ${summarize(queued.map((q) => q.ip))}`] : []),
        ...(scanning.length > 0 ? [`being scanned now, not queued: ${summarize(scanning)}`] : []),
      ].join('; '),
    );
    return outcome;
  }

  async restartCycle(actor: AuditActor): Promise<ReturnType<Coordinator['progress']>> {
    const progress = await this.coordinator.restartCycle();
    await this.audit(actor, 'cycle.restart', `cycle ${progress.cycle}`, 'the current cycle was abandoned and the next one started');
    return progress;
  }

  async addAlertRule(actor: AuditActor, input: { name: string; query: string; url: string }): Promise<AlertRule> {
    const rule = await addAlertRule(this.coordinator.store, input, this.coordinator.now());
    await this.audit(actor, 'alert.add', rule.name, `events matching ${JSON.stringify(rule.query)} go to ${rule.url}`);
    return rule;
  }

  async removeAlertRule(actor: AuditActor, name: string): Promise<void> {
    await removeAlertRule(this.coordinator.store, name);
    await this.audit(actor, 'alert.remove', name, 'rule removed (its dead letters stay)');
  }
}
