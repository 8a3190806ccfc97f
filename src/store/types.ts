import type { QueryNode } from './query-ast.js';

/**
 * The store contracts, split by what they hold (docs/store.md):
 * - `CoordinationStore`: scope/blocklist, documents (policies, learned state, cycle position),
 *   agents, admin tokens, leases and the work queue. Transactional. SQLite (embedded, default)
 *   or PostgreSQL (several coordinators on one database). Suite: test/store/coordination-conformance.ts.
 * - `ScanIndex`: history, latest per host, events, search and statistics. Append-mostly and
 *   searchable. SQLite, PostgreSQL or Elasticsearch. Suite: test/store/index-conformance.ts.
 * - `Store`: both behind one object, what the coordinator uses (test/store/conformance.ts runs
 *   both suites plus the ingest that spans them).
 *
 * Conventions that hold for every method:
 * - All times are integers: milliseconds since the Unix epoch (UTC). The store never reads the
 *   clock for data it returns; callers pass `at`/`now`, so tests and replays are deterministic.
 * - Every value passed in is copied; every value returned is a fresh plain JSON-compatible object.
 * - IP addresses are strings in canonical form (src/core/address.ts: IPv4 dotted quad, IPv6
 *   per RFC 5952, IPv4-mapped as IPv4); the coordinator normalises them before calling the store. Scope/blocklist
 *   ranges are stored as given (CIDR `198.18.0.0/24`, range `198.18.0.1-198.18.0.9` or address).
 * - Errors are `PortbanditError`s: `PB_ERR_CONFLICT` for a revision mismatch or a duplicate id,
 *   `PB_ERR_NOT_FOUND` where documented, `PB_ERR_STORE` (with `cause`) when the backend fails.
 *   A failed call leaves previously stored data unchanged (writes are atomic per call).
 * - Cursors are opaque strings: pass back exactly what a page returned.
 */
export interface CoordinationStore {
  /** Which backend this is, for logs and /healthz. */
  readonly kind: StoreKind;

  /** Release connections/handles. Further calls fail. */
  close(): Promise<void>;

  // ---------------------------------------------------------------- scope and blocklist
  /** All entries of one list plus the shared scope version (see `getScopeVersion`). */
  listScope(list: ScopeListName): Promise<ScopeListing>;
  /**
   * Add entries (upsert by `range`: an existing range gets the new tags, keeps its `addedAt`).
   * Bumps the scope version once per call that changed something; returns the new version.
   */
  addScopeEntries(list: ScopeListName, entries: readonly ScopeEntryInput[], at: number): Promise<number>;
  /** Remove entries by `range` (unknown ranges are ignored). Returns removed count and version. */
  removeScopeEntries(list: ScopeListName, ranges: readonly string[]): Promise<{ removed: number; version: number }>;
  /** Replace a whole list atomically (import). Returns the new version. */
  replaceScope(list: ScopeListName, entries: readonly ScopeEntryInput[], at: number): Promise<number>;
  /**
   * A counter shared by scope and blocklist that increases on every change; the coordinator
   * compares it with the version its cycle was built from to detect edits. 0 for a new store.
   */
  getScopeVersion(): Promise<number>;

  // ---------------------------------------------------------------- JSON documents
  /**
   * Small JSON documents with a revision, in collections: per-tag scan policies
   * (`policies`, key = tag, `""` for the default policy), strategy states (`strategyStates`,
   * key chosen by the coordinator, e.g. `${tag}/${strategyName}`), coordinator state
   * (`coordinator`: cycle position, seed, counters) and alerting (`alertRules`, key = rule name;
   * `alertDeadLetters`, key = `${rule}/${eventId}`) and agents' groups (`agentGroups`, key =
   * agent id, value `{ groups: string[] }`). Undefined when absent.
   */
  getDocument<T = unknown>(collection: DocumentCollection, key: string): Promise<StoredDocument<T> | undefined>;
  /**
   * Create or replace a document. With `expectedRevision` the write happens only if the stored
   * revision equals it (0 = must not exist yet), otherwise `PB_ERR_CONFLICT`. Revisions start
   * at 1 and increase by 1 per write. Returns the stored document. `enqueue` appends work to
   * the queue in the same transaction (a claimed block of the shared cycle: the position and
   * the addresses it covers commit together or not at all).
   */
  putDocument<T = unknown>(
    collection: DocumentCollection,
    key: string,
    value: T,
    options: { at: number; expectedRevision?: number; enqueue?: readonly QueuedWorkInput[] },
  ): Promise<StoredDocument<T>>;
  /** All documents of a collection, by key ascending. */
  listDocuments<T = unknown>(collection: DocumentCollection): Promise<StoredDocument<T>[]>;
  /** Delete a document; true when it existed. */
  deleteDocument(collection: DocumentCollection, key: string): Promise<boolean>;

  // ---------------------------------------------------------------- agents and admin tokens
  /** Register an agent. `PB_ERR_CONFLICT` when the id or token hash already exists. */
  createAgent(agent: NewAgent): Promise<Agent>;
  getAgent(id: string): Promise<Agent | undefined>;
  /** Look an agent up by the hash of its bearer token (the token itself is never stored). */
  findAgentByTokenHash(tokenHash: string): Promise<Agent | undefined>;
  /** All agents, by id ascending. */
  listAgents(): Promise<Agent[]>;
  /**
   * Record activity: sets `lastSeenAt` (never moves it backwards), optionally `version`, and adds
   * `increments` to the named counters. `PB_ERR_NOT_FOUND` for an unknown id.
   */
  recordAgentActivity(id: string, activity: AgentActivity): Promise<Agent>;
  /** Remove an agent (its token stops working). True when it existed. */
  deleteAgent(id: string): Promise<boolean>;

  /** Store an admin token (hashed). `PB_ERR_CONFLICT` when the id or hash already exists. */
  createAdminToken(token: AdminToken): Promise<AdminToken>;
  findAdminTokenByHash(tokenHash: string): Promise<AdminToken | undefined>;
  listAdminTokens(): Promise<AdminToken[]>;
  deleteAdminToken(id: string): Promise<boolean>;

  // ---------------------------------------------------------------- leases and work queue
  /** Store a lease handed out to an agent. `PB_ERR_CONFLICT` when the id exists. */
  putLease(lease: Lease): Promise<void>;
  getLease(id: string): Promise<Lease | undefined>;
  /** Leases in flight, optionally for one agent or one ip, by deadline ascending then id. */
  listLeases(filter?: { agentId?: string; ip?: string }): Promise<Lease[]>;
  /**
   * Number of leases in flight (optionally of one agent; with `liveAt`, only those whose deadline
   * is after it: not yet expired).
   */
  countLeases(filter?: { agentId?: string; liveAt?: number }): Promise<number>;
  /** Extend a lease's deadline; false when the lease is gone. */
  renewLease(id: string, deadline: number): Promise<boolean>;
  /**
   * Remove a lease and return it; undefined when it does not exist (already completed or
   * expired), which makes duplicate and late submissions idempotent.
   */
  completeLease(id: string): Promise<Lease | undefined>;
  /**
   * Atomically remove up to `limit` leases whose `deadline <= now` (oldest deadline first) and
   * return them. With `requeue`, each is appended to the work queue (reason `expired`, carrying
   * ip, tags, ports, session and round) in the same step, so a crash cannot lose a target.
   */
  takeExpiredLeases(now: number, limit: number, options?: { requeue?: boolean }): Promise<Lease[]>;

  /**
   * Append items to the work queue (manual rescans, expired leases, follow-ups, claimed cycle
   * blocks). The queue is served by class, then first in, first out: follow-up rounds and expired
   * leases, then manual rescans and the follow-up rounds of visits that found nothing so far
   * (`silent`), then the cycle (`queuePriority`, src/store/queue-priority.ts).
   */
  enqueueWork(items: readonly QueuedWorkInput[]): Promise<QueuedWork[]>;
  /**
   * Atomically remove and return up to `limit` items from the head of the queue (in the order of
   * `enqueueWork`; listed in the same order by `listQueuedWork`). A store shared
   * by several coordinators (PostgreSQL) keeps a dequeued item hidden for `holdMs` instead,
   * until `putLease` for its address (or `removeQueuedWork`) settles it: a coordinator killed
   * between the two does not lose it.
   */
  dequeueWork(limit: number, options?: { holdMs?: number }): Promise<QueuedWork[]>;
  /** The queue, head first, without removing anything. */
  listQueuedWork(limit?: number): Promise<QueuedWork[]>;
  /** Number of queued items (cheap; for metrics). */
  countQueuedWork(): Promise<number>;
  /** Remove one queued item by id; true when it existed. */
  removeQueuedWork(id: string): Promise<boolean>;
  /**
   * Give dequeued items back at once: a store that holds a dequeued item (PostgreSQL, `holdMs`)
   * makes it visible again now, for a coordinator whose lease for it could not be written (else
   * it would wait out the hold, a whole lease time). Returns how many were held. A store whose
   * dequeue removes the item (SQLite) holds nothing: 0.
   */
  releaseQueuedWork(ids: readonly string[]): Promise<number>;

  // ---------------------------------------------------------------- work routed by agent group
  /**
   * Like `dequeueWork`, for an agent of `groups`: atomically remove and return up to `limit`
   * items, head first, that such an agent may take — items without `groups`, and items whose
   * `groups` share one with `groups`. Other items stay queued in place. `holdMs` as for `dequeueWork`.
   */
  dequeueWorkFor(limit: number, groups: readonly string[], options?: { holdMs?: number }): Promise<QueuedWork[]>;

  // ---------------------------------------------------------------- several coordinators
  /**
   * Store `token` only when no admin token exists yet, atomically across processes (the first
   * coordinator on an empty database prints it; the others find one). True when stored.
   */
  createFirstAdminToken(token: AdminToken): Promise<boolean>;
  /**
   * Try to take (or keep) a named role, such as `learner`, for this store handle: true while this
   * handle holds it. At most one handle on the database holds a role; it is released by `close`
   * or when the holder's connection dies. A store only one process uses holds every role.
   */
  holdRole(role: string): Promise<boolean>;
  /**
   * Finished host visits for the elected learner (appended by `ingestScan`'s `learn`), from
   * position `after` (a previous `cursor`; undefined = from the start): every item whose
   * position is at or after `after` and before the returned `cursor`, in position order. Each
   * item is in exactly one such window, even when writers commit out of order: PostgreSQL
   * answers only up to the oldest transaction still running. Positions and cursors are decimal
   * strings that compare as integers.
   */
  readLearning(after: string | undefined): Promise<{ items: LearningRecord[]; cursor: string }>;
  /** Drop learning items before a position (learned and persisted). Returns how many went. */
  pruneLearning(before: string): Promise<number>;

  // ---------------------------------------------------------------- outbox (search index feed)
  /**
   * The outbox: what a separate search index (Elasticsearch) has still to receive. A store opened
   * with `outbox: true` appends a record in the same transaction as the write it describes: an
   * inserted or replaced visit (`ingestScan`, with its lease completion, follow-up work and
   * learning items), `appendEvents`, `deleteHistory`. Records stay until acknowledged, so a
   * feeder killed mid-batch replays them (the index applies them idempotently). Oldest first,
   * up to `limit`; ids are decimal strings that compare as integers. A store without an outbox
   * answers empty.
   */
  readOutbox(limit: number): Promise<OutboxRecord[]>;
  /** Remove records the index accepted; unknown ids are ignored. Returns how many went. */
  ackOutbox(ids: readonly string[]): Promise<number>;
  /** Records waiting (for metrics and status). */
  countOutbox(): Promise<number>;
}

/** What an outbox record says (see `CoordinationStore.readOutbox`). */
export type OutboxEntry =
  | {
      readonly kind: 'visit';
      /** The visit's document as stored by this write (a later round carries every round so far). */
      readonly scan: ScanDocument;
      /** Whether it became (or stayed) the host's latest in the coordination store at this write. */
      readonly latest: boolean;
      /** Its events, with the ids the coordination store gave them. */
      readonly events: readonly StoreEvent[];
    }
  | { readonly kind: 'events'; readonly events: readonly StoreEvent[] }
  | { readonly kind: 'delete'; readonly scanIds: readonly string[] };

/** An outbox record: its entry and its position (a decimal string; acknowledge by it). */
export type OutboxRecord = OutboxEntry & { readonly id: string };

/**
 * The scan index: what agents found, append-mostly and searchable (history, latest per host,
 * events, search, statistics). Its conformance suite: test/store/index-conformance.ts.
 */
export interface ScanIndex {
  /** Which backend this is, for logs and /healthz. */
  readonly kind: StoreKind;

  /** Release connections/handles. Further calls fail. */
  close(): Promise<void>;

  // ---------------------------------------------------------------- scans
  /**
   * Store one host visit: history, latest-per-host when it is newer than the host's current
   * latest (by `finishedAt`, then `scanId`), and its `events`. Idempotent by `scanId`: a known
   * scanId changes nothing (`inserted: false`) unless `replace` is set (a later round of the
   * visit; the composite Store decides when that is allowed, see `Store.ingestScan`).
   */
  ingestScan(input: ScanIngest): Promise<IngestResult>;
  /** One scan from history, or undefined. */
  getScan(scanId: string): Promise<ScanDocument | undefined>;
  /** The latest scan of a host, or undefined. */
  getLatestScan(ip: string): Promise<ScanDocument | undefined>;
  /** All scans of one ip, newest first (finishedAt desc, scanId desc), paginated. */
  hostHistory(ip: string, page?: PageRequest): Promise<Page<ScanDocument>>;
  /**
   * Optional fast path of `latestAnsweredScan` (src/store/answered.ts): among a host's
   * ANSWERED_SEARCH_DEPTH newest scans, the newest whose host was not down, or undefined. The
   * same answer as reading them page by page; an index without it is read so.
   */
  latestAnsweredScan?(ip: string): Promise<ScanDocument | undefined>;
  /**
   * Search scans with a query AST (`parseQuery` in src/store/query.ts; undefined = everything),
   * over latest-per-host (default) or history. Ordered newest first (finishedAt desc, scanId
   * desc). `total` is the exact number of matches.
   */
  search(query: QueryNode | undefined, options?: SearchOptions): Promise<Page<ScanDocument>>;
  /** Count scans matching a query (same semantics as `search`). */
  count(query: QueryNode | undefined, options?: { view?: SearchView }): Promise<number>;
  /** History in time order (finishedAt asc, scanId asc), in batches: for the replay export. */
  exportHistory(options?: { since?: number; until?: number; batchSize?: number }): AsyncIterable<ScanDocument>;

  // ---------------------------------------------------------------- history retention
  /**
   * Delete visits from history by scanId (retention), with their search facets, atomically per
   * call. A scan that is its host's latest is never deleted (counted in `refusedLatest`);
   * unknown ids are ignored. Events are not touched: the caller keeps the scans they reference.
   */
  deleteHistory(scanIds: readonly string[]): Promise<{ deleted: number; refusedLatest: number }>;

  // ---------------------------------------------------------------- events
  /** Append events outside an ingest (normally they come with `ingestScan`). */
  appendEvents(events: readonly NewStoreEvent[]): Promise<void>;
  /** Events after `cursor` (from the start when absent) in append order, up to `limit`. */
  readEvents(options?: { cursor?: string; limit?: number }): Promise<EventPage>;
  /**
   * Events before `before` (from the newest when absent), newest first, up to `limit`; the page's
   * `cursor` is its oldest event's id, to pass as the next `before`. For the UI's recent-events
   * page. Optional: a store without it is read forward (`readEvents`) from the start.
   */
  readEventsBackward?(options?: { before?: string; limit?: number }): Promise<EventPage>;

  // ---------------------------------------------------------------- statistics
  /** Host, scan, event and open-port counts; hosts/open ports over latest-per-host. */
  counts(options?: { tag?: string }): Promise<StoreCounts>;
  /** Most common open ports over latest-per-host (hosts with the port open), optionally per tag. */
  topPorts(options?: { tag?: string; limit?: number }): Promise<{ port: number; hosts: number }[]>;
  /** Most common service names over latest-per-host (hosts with the service), optionally per tag. */
  topServices(options?: { tag?: string; limit?: number }): Promise<{ service: string; hosts: number }[]>;
  /** Scans finished per UTC hour in [since, until), hours with no scans omitted, ascending. */
  scansPerHour(options: { since: number; until: number; tag?: string }): Promise<{ hourStart: number; scans: number }[]>;
}

/**
 * The coordinator's store: a coordination store and a scan index behind one object. The SQLite
 * store (`openSqliteStore`, the default) and the PostgreSQL store (`openPostgresStore`) hold both
 * in one database, so a result, its lease and its follow-up commit together.
 */
export interface Store extends CoordinationStore, ScanIndex {
  readonly kind: StoreKind;
  close(): Promise<void>;

  /**
   * Ingest a scan (one host visit) atomically: store it in history, update latest-per-host when
   * it is newer than the host's current latest (by `finishedAt`, then `scanId`), append
   * `events`, and complete `leaseId` if given. Idempotent by `scanId`: a second call with a known
   * scanId changes nothing and returns `inserted: false` (the lease, if still present, is left
   * alone) — unless `replace` is set: then a later round of the visit replaces the stored
   * document (history, search facets, latest) once per `leaseId`, which must still exist.
   */
  ingestScan(input: IngestInput): Promise<IngestResult>;
}

/** A finished host visit for a policy's strategy to learn from (the HostResult, as JSON). */
export interface LearningItem {
  /** The policy key the visit ran under. */
  readonly key: string;
  readonly result: unknown;
  readonly at: number;
}

/** A queued learning item with its position (see `readLearning`). */
export interface LearningRecord extends LearningItem {
  readonly position: string;
}

/** Backends, for logs and /healthz. */
export type StoreKind = 'sqlite' | 'elasticsearch' | 'postgres';

export type ScopeListName = 'scope' | 'blocklist';

export interface ScopeEntryInput {
  /** CIDR, `first-last` range or single address, as the coordinator normalised it. */
  readonly range: string;
  readonly tags: readonly string[];
}

export interface ScopeEntry extends ScopeEntryInput {
  readonly addedAt: number;
}

export interface ScopeListing {
  readonly version: number;
  /** Ordered by `range` ascending (string order). */
  readonly entries: ScopeEntry[];
}

export type DocumentCollection =
  'policies' | 'strategyStates' | 'coordinator' | 'alertRules' | 'alertDeadLetters' | 'auditLog' | 'agentGroups';

export interface StoredDocument<T = unknown> {
  readonly key: string;
  readonly value: T;
  readonly revision: number;
  readonly updatedAt: number;
}

export interface NewAgent {
  readonly id: string;
  readonly name: string;
  /** Hash of the bearer token (the coordinator chooses the hash; the store compares strings). */
  readonly tokenHash: string;
  readonly createdAt: number;
  readonly version?: string;
}

export interface Agent extends NewAgent {
  readonly version: string | undefined;
  readonly lastSeenAt: number | undefined;
  /** Free counters the coordinator maintains: `workItems`, `results` (accepted rounds), `visits` (host visits begun), ... */
  readonly counters: Readonly<Record<string, number>>;
}

export interface AgentActivity {
  readonly at: number;
  readonly version?: string;
  readonly increments?: Readonly<Record<string, number>>;
}

export interface AdminToken {
  readonly id: string;
  readonly name: string;
  readonly tokenHash: string;
  readonly createdAt: number;
}

/**
 * A lease as stored. The store keeps `session` opaque (`unknown`); the coordinator writes
 * `Lease<LeaseSession>` and reads the session back through `readLeaseSession`, which checks it.
 */
export interface Lease<Session = unknown> {
  readonly id: string;
  readonly ip: string;
  readonly agentId: string;
  /**
   * Ports this work item asks the agent to probe, as a canonical range spec ("1-1024,8080":
   * ascending, merged). Rows written before it was a spec hold `ports`, a list of numbers: the
   * stores read them back as this spec (`readLeaseDoc`).
   */
  readonly portRanges: string;
  readonly tags: readonly string[];
  /** The host session's serialised state (HostSessionState) or any JSON the coordinator needs. */
  readonly session: Session;
  readonly issuedAt: number;
  readonly deadline: number;
  /** Host-session round (0 = first work item for this host-epoch). */
  readonly round: number;
  /** Cycle number the target came from, when it came from the cycle. */
  readonly cycle?: number;
  /** Why the work exists. */
  readonly reason: WorkReason;
  /**
   * The key the agent named its lease request with (`portbandit-work-request`): an agent whose
   * request went unanswered names it again as abandoned, and its leases are given back.
   */
  readonly requestKey?: string;
}

export type WorkReason = 'cycle' | 'manual' | 'expired' | 'followup';

export interface QueuedWorkInput {
  readonly ip: string;
  readonly tags: readonly string[];
  readonly reason: WorkReason;
  readonly enqueuedAt: number;
  /**
   * Ports decided already (expired lease, follow-up), a canonical range spec like
   * `Lease.portRanges`; absent = the coordinator decides. Older rows' `ports` lists are read as one.
   */
  readonly portRanges?: string;
  readonly session?: unknown;
  readonly round?: number;
  readonly cycle?: number;
  /** Only agents of one of these groups may take the item (`dequeueWorkFor`); absent = any agent. */
  readonly groups?: readonly string[];
  /**
   * A follow-up round of a visit that has found no open port so far (a silent first look under a
   * budget that covers the port space): queued behind the rounds of visits that answered, with
   * the manual rescans (src/store/queue-priority.ts).
   */
  readonly silent?: boolean;
}

export interface QueuedWork extends QueuedWorkInput {
  /** Assigned by the store; within a class (see `enqueueWork`) the queue's order is enqueue order. */
  readonly id: string;
}

export type PortState = 'open' | 'closed' | 'filtered' | 'open|filtered' | 'closed|filtered' | 'unfiltered';

export interface ScriptResult {
  readonly id: string;
  readonly output: string;
  /** Structured NSE output (elements/tables), when the agent parsed it. */
  readonly fields?: unknown;
}

export interface ScannedPort {
  readonly port: number;
  readonly protocol?: 'tcp' | 'udp';
  readonly state: PortState;
  readonly service?: string;
  readonly product?: string;
  readonly version?: string;
  readonly extrainfo?: string;
  readonly cpes: readonly string[];
  readonly scripts: readonly ScriptResult[];
  /** Open, and service detection got no answer within the -sV time-out (or was skipped: none at the last visit). */
  readonly silent?: true;
}

/**
 * One host visit: every round of it (round 0 and the strategy's follow-ups, and a re-issue after
 * an expired lease) in one document, whose `scanId` is the visit's first lease id.
 */
export interface ScanDocument {
  readonly scanId: string;
  readonly ip: string;
  readonly tags: readonly string[];
  readonly agentId: string;
  readonly startedAt: number;
  readonly finishedAt: number;
  /** Coordinator epoch (per-host visit counter used by strategies). */
  readonly epoch: number;
  readonly cycle: number;
  /** Ports by port number ascending; search fields match only ports whose state is `open`. */
  readonly ports: readonly ScannedPort[];
  readonly preflight: 'masscan' | 'connect' | 'none';
  /** The ports that were probed (handed out, all rounds), as an nmap-style spec ("22,80,8000-8100"). */
  readonly probedPorts: string;
  /**
   * Probed ports whose state is unknown (host time-out, scanner failure, preflight loss), a spec
   * like `probedPorts`. Every other probed port not listed in `ports` was observed not open.
   */
  readonly unknownPorts?: string;
  /** Why the visit is partial; open ports may lack service detail. Absent when it finished. */
  readonly incomplete?: string;
  /** Lease ids of the visit's rounds, in order (the first is `scanId`). */
  readonly rounds?: readonly string[];
  /**
   * The ports last known open as of this visit: open here, or open at an earlier visit and not
   * observed since (never probed again, or unknown here). What diffs and events compare against.
   */
  readonly knownOpen?: readonly number[];
  /** Phase durations in milliseconds, free keys (`preflight`, `nmap`, `total`, ...). */
  readonly timings: Readonly<Record<string, number>>;
  /** Host-level extras (hostname, OS guess, ...). */
  readonly host?: Readonly<Record<string, unknown>>;
  /** The agent group (vantage point) the visit was scanned from, when the agent has groups. */
  readonly group?: string;
  /** The scope's DNS names that resolved to this address when the visit was stored (searchable as `name:`). */
  readonly names?: readonly string[];
  /**
   * Web services rendered in this visit (agent `--screenshots`), by port. The images live apart
   * (the screenshot store, `<data>/screenshots.db`); `screenshot:true` searches this field.
   */
  readonly screenshots?: readonly ScreenshotMeta[];
}

/** What a scan document says of one screenshot (the image itself is in the screenshot store). */
export interface ScreenshotMeta {
  readonly port: number;
  readonly scheme: 'http' | 'https';
  readonly mime: 'image/png' | 'image/jpeg';
  readonly width: number;
  readonly height: number;
  readonly bytes: number;
  readonly title?: string;
}

/** What a scan index stores of one visit. */
export interface ScanIngest {
  readonly scan: ScanDocument;
  readonly events?: readonly NewStoreEvent[];
  /** Replace the stored document of `scan.scanId` (a later round of the same visit); a Store needs `leaseId` with it. */
  readonly replace?: boolean;
}

export interface IngestInput extends ScanIngest {
  readonly leaseId?: string;
  /**
   * Finished visits for the elected learner (several coordinators), queued in the same write
   * and only when the scan is inserted, so a stored result is never lost to learning.
   */
  readonly learn?: readonly LearningItem[];
  /**
   * Work queued by the same write, only when the scan is inserted (not for a duplicate): a
   * host's follow-up round goes into the queue with the result of the round before it, in one
   * transaction where the store has them, instead of a second write the submit waits for.
   */
  readonly enqueue?: readonly QueuedWorkInput[];
}

export interface IngestResult {
  readonly inserted: boolean;
  /** True when the scan became the host's latest. */
  readonly latest: boolean;
  /** The completed lease, when `leaseId` was given and still present. */
  readonly lease?: Lease;
  /** The items of `enqueue`, as queued (absent when nothing was). */
  readonly queued?: readonly QueuedWork[];
}

export { EVENT_KINDS, type EventKind } from './event-kind.js';
import type { EventKind } from './event-kind.js';

export interface NewStoreEvent {
  readonly kind: EventKind;
  readonly at: number;
  readonly ip: string;
  readonly scanId: string;
  readonly tags: readonly string[];
  readonly port?: number;
  /** Before/after details (service, product, version), free JSON. */
  readonly detail?: unknown;
}

export interface StoreEvent extends NewStoreEvent {
  /** Store-assigned, unique. */
  readonly id: string;
}

export interface EventPage {
  readonly events: StoreEvent[];
  /** Pass to the next `readEvents`; equals the input cursor when nothing new arrived. */
  readonly cursor: string | undefined;
}

export type SearchView = 'latest' | 'history';

export interface PageRequest {
  /** 1..1000, default 50. */
  readonly limit?: number;
  /** Continue after a previous page (preferred: stable under inserts). */
  readonly cursor?: string;
  /** Skip this many results (ignored when `cursor` is given). */
  readonly offset?: number;
}

export interface SearchOptions extends PageRequest {
  readonly view?: SearchView;
}

export interface Page<T> {
  readonly items: T[];
  /** Exact number of matches over the whole result set. */
  readonly total: number;
  /** Cursor for the next page, undefined on the last page. */
  readonly nextCursor: string | undefined;
}

export interface StoreCounts {
  readonly hosts: number;
  readonly scans: number;
  readonly events: number;
  /** Open ports summed over latest-per-host. */
  readonly openPorts: number;
}

/** How many of a host's newest scans are searched for the latest one in which it answered. */
export const ANSWERED_SEARCH_DEPTH = 20;

/** Page size bounds shared by both stores. */
export const DEFAULT_PAGE_SIZE = 50;
export const MAX_PAGE_SIZE = 1000;
