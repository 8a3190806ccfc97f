import type { Store } from '../store/index.js';
import { generateId, hashToken, tokenKind } from './tokens.js';

/** Where a change was made. */
export type AuditVia = 'ui' | 'api';

/** Who made a change: the admin token (id and name, never the token) and the surface. */
export interface AuditActor {
  readonly id: string;
  readonly name: string;
  readonly via: AuditVia;
}

/** The changes the audit log records (one per admin action). */
export type AuditAction =
  | 'scope.add'
  | 'scope.remove'
  | 'scope.import'
  | 'scope.replace'
  | 'policy.set'
  | 'policy.services'
  | 'policy.delete'
  | 'agent.create'
  | 'agent.delete'
  | 'agent.groups'
  | 'token.create'
  | 'token.revoke'
  | 'host.rescan'
  | 'cycle.restart'
  | 'alert.add'
  | 'alert.remove'
  | 'retention.run';

/** One audited change: who, what (action, target, a one-line summary), when. */
export interface AuditEntry {
  readonly id: string;
  readonly at: number;
  readonly actor: AuditActor;
  readonly action: AuditAction;
  /** What was changed: a list name, a tag, an agent or token id, an address, a rule name. */
  readonly target: string;
  readonly summary: string;
}

/** A page of the audit log, newest first. */
export interface AuditPage {
  readonly items: AuditEntry[];
  readonly total: number;
}

const AUDIT = 'auditLog' as const;
/** Longest summary kept (a 100,000-line import is summarised, not copied). */
export const AUDIT_SUMMARY_MAX = 500;

let sequence = 0;
const TIME_SPAN = 1e15;
const SEQUENCE_SPAN = 1_000_000;

/**
 * The document key sorts newest first: the time and a per-process sequence number, each
 * subtracted from its span and zero-padded, then a random id (two entries of one millisecond
 * never collide). The stores list a collection in key order, so the log lists newest first,
 * and a store that caps a listing (Elasticsearch: 10,000) drops the oldest entries, not the newest.
 */
export function auditKey(at: number, seq: number): string {
  const time = TIME_SPAN - 1 - Math.min(TIME_SPAN - 1, Math.max(0, Math.trunc(at)));
  return `${String(time).padStart(15, '0')}.${String(SEQUENCE_SPAN - 1 - (seq % SEQUENCE_SPAN)).padStart(6, '0')}.${generateId('audit')}`;
}

/** Shorten a summary to AUDIT_SUMMARY_MAX characters (with an ellipsis). */
export function clipSummary(text: string): string {
  return text.length <= AUDIT_SUMMARY_MAX ? text : `${text.slice(0, AUDIT_SUMMARY_MAX - 1)}…`;
}

/** Store one audit entry (a document of its own: appending never rewrites older entries). */
export async function recordAudit(store: Store, entry: Omit<AuditEntry, 'id'>): Promise<AuditEntry> {
  sequence = (sequence + 1) % SEQUENCE_SPAN;
  const id = auditKey(entry.at, sequence);
  const stored: AuditEntry = { id, ...entry, summary: clipSummary(entry.summary) };
  await store.putDocument(AUDIT, id, stored, { at: entry.at, expectedRevision: 0 });
  return stored;
}

/**
 * A page of the audit log, newest first (the key order). A page costs a listing of the whole
 * collection: fine for a log of human changes (thousands of entries).
 */
export async function listAudit(store: Store, options: { offset: number; limit: number }): Promise<AuditPage> {
  const docs = await store.listDocuments<AuditEntry>(AUDIT);
  return { items: docs.slice(options.offset, options.offset + options.limit).map((d) => d.value), total: docs.length };
}

/**
 * The admin token behind a bearer token, as an audit actor. Called after authentication, so an
 * unknown token (revoked in between) is recorded by its hash prefix rather than refused.
 */
export async function identifyAdmin(store: Store, token: string | undefined, via: AuditVia): Promise<AuditActor> {
  if (token === undefined || tokenKind(token) !== 'admin') return { id: 'unknown', name: 'unknown', via };
  const hash = hashToken(token);
  const found = await store.findAdminTokenByHash(hash);
  return found ? { id: found.id, name: found.name, via } : { id: `sha256:${hash.slice(0, 12)}`, name: 'unknown', via };
}
