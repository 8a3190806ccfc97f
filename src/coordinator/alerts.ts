import { setTimeout as sleep } from 'node:timers/promises';
import { PortbanditError } from '../core/index.js';
import { matchEvent, parseEventQuery, type Store, type StoreEvent } from '../store/index.js';

/** An alert rule: events matching `query` (an event query) are POSTed as JSON to `url`. */
export interface AlertRule {
  readonly name: string;
  readonly query: string;
  readonly url: string;
  readonly createdAt: number;
  /** The last event this rule has finished with (delivered or dead-lettered); the store's cursor. */
  readonly cursor?: string;
}

/** An event a rule could not deliver after every attempt. */
export interface DeadLetter {
  readonly id: string;
  readonly rule: string;
  readonly url: string;
  readonly event: StoreEvent;
  readonly attempts: number;
  readonly error: string;
  readonly failedAt: number;
}

export interface AlertDeliveryOptions {
  /** Attempts per event before it goes to the dead letters (default 5). */
  readonly maxAttempts?: number;
  /** First retry delay; doubles per attempt up to `maxDelayMs` (default 1000, 30,000). */
  readonly baseDelayMs?: number;
  readonly maxDelayMs?: number;
  /** Per-request time limit (default 10,000). */
  readonly timeoutMs?: number;
  readonly now?: () => number;
  readonly log?: (message: string) => void;
}

const RULES = 'alertRules' as const;
const DEAD = 'alertDeadLetters' as const;
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** Check a rule's name, query and URL; throws PB_ERR_ALERT_RULE (name), PB_ERR_QUERY or PB_ERR_URL naming the field. */
export function checkAlertRule(input: { name: string; query: string; url: string }): void {
  if (!NAME.test(input.name))
    throw new PortbanditError(
      'PB_ERR_ALERT_RULE',
      `expected a rule name of 1-64 letters, digits, '.', '_' or '-', got ${JSON.stringify(input.name)}`,
      { where: 'name' },
    );
  parseEventQuery(input.query);
  let url: URL;
  try {
    url = new URL(input.url);
  } catch {
    throw new PortbanditError('PB_ERR_URL', `expected an http(s) webhook URL, got ${JSON.stringify(input.url)}`, { where: 'url' });
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new PortbanditError('PB_ERR_URL', `expected an http or https webhook URL, got ${JSON.stringify(input.url)}`, { where: 'url' });
}

/** The store's current end of the events: a new rule alerts on what happens from now on. */
async function eventsEnd(store: Store): Promise<string | undefined> {
  let cursor: string | undefined;
  for (;;) {
    const page = await store.readEvents({ ...(cursor !== undefined ? { cursor } : {}), limit: 10_000 });
    if (page.events.length === 0) return cursor;
    cursor = page.cursor;
  }
}

/** Create a rule (PB_ERR_CONFLICT if the name exists); it alerts on events after this moment. */
export async function addAlertRule(store: Store, input: { name: string; query: string; url: string }, at: number): Promise<AlertRule> {
  checkAlertRule(input);
  const cursor = await eventsEnd(store);
  const rule: AlertRule = {
    name: input.name,
    query: input.query,
    url: input.url,
    createdAt: at,
    ...(cursor !== undefined ? { cursor } : {}),
  };
  try {
    await store.putDocument(RULES, input.name, rule, { at, expectedRevision: 0 });
  } catch (error) {
    if (error instanceof PortbanditError && error.code === 'PB_ERR_CONFLICT')
      throw new PortbanditError('PB_ERR_CONFLICT', `an alert rule ${JSON.stringify(input.name)} exists already`, { where: 'name' });
    throw error;
  }
  return rule;
}

export async function listAlertRules(store: Store): Promise<AlertRule[]> {
  return (await store.listDocuments<AlertRule>(RULES)).map((d) => d.value);
}

/** Delete a rule; PB_ERR_NOT_FOUND when there is none of that name. */
export async function removeAlertRule(store: Store, name: string): Promise<void> {
  if (!(await store.deleteDocument(RULES, name)))
    throw new PortbanditError('PB_ERR_NOT_FOUND', `no alert rule ${JSON.stringify(name)}`, { where: 'name' });
}

export async function listDeadLetters(store: Store): Promise<DeadLetter[]> {
  return (await store.listDocuments<DeadLetter>(DEAD)).map((d) => d.value);
}

/**
 * Delivers alert rules' matches to their webhooks: per rule, the events after its cursor that
 * match its query are POSTed one by one, in order, each retried with exponential backoff
 * (bounded attempts) and then kept as a dead letter. The rule's cursor is written after each
 * delivered (or dead-lettered) event, and after each page of events that did not match, so a
 * delivered event is never sent again by a later pass; a crash between
 * a delivery and that write re-sends one event, which the `x-portbandit-delivery` header (rule
 * and event id) lets a receiver drop. Rules run side by side: one dead webhook delays no other.
 */
export class AlertDispatcher {
  private readonly maxAttempts: number;
  private readonly baseDelayMs: number;
  private readonly maxDelayMs: number;
  private readonly timeoutMs: number;
  private readonly now: () => number;
  private readonly log: (message: string) => void;
  private running: Promise<void> | undefined;
  private readonly stopping = new AbortController();

  constructor(
    private readonly store: Store,
    options: AlertDeliveryOptions = {},
  ) {
    this.maxAttempts = options.maxAttempts ?? 5;
    this.baseDelayMs = options.baseDelayMs ?? 1000;
    this.maxDelayMs = options.maxDelayMs ?? 30_000;
    this.timeoutMs = options.timeoutMs ?? 10_000;
    this.now = options.now ?? Date.now;
    this.log = options.log ?? (() => undefined);
  }

  /** One pass over every rule (joins a pass already running); resolves when all are caught up. */
  runOnce(): Promise<void> {
    if (this.stopping.signal.aborted) return Promise.resolve();
    this.running ??= this.pass().finally(() => (this.running = undefined));
    return this.running;
  }

  /** Stop: a pass in progress ends after its current attempt (its cursors stay where they are). */
  async stop(): Promise<void> {
    this.stopping.abort();
    await this.running?.catch(() => undefined);
  }

  private async pass(): Promise<void> {
    const rules = await this.store.listDocuments<AlertRule>(RULES);
    await Promise.all(rules.map((doc) => this.runRule(doc.value, doc.revision)));
  }

  private async runRule(rule: AlertRule, revision: number): Promise<void> {
    const filter = parseEventQuery(rule.query);
    let cursor = rule.cursor;
    let saved = cursor;
    /** Write the cursor; false when the rule was deleted or replaced meanwhile (not brought back). */
    const save = async (): Promise<boolean> => {
      if (cursor === saved) return true;
      try {
        revision = (await this.store.putDocument(RULES, rule.name, { ...rule, cursor }, { at: this.now(), expectedRevision: revision }))
          .revision;
        saved = cursor;
        return true;
      } catch (error) {
        if (error instanceof PortbanditError && error.code === 'PB_ERR_CONFLICT') return false;
        throw error;
      }
    };
    for (;;) {
      const page = await this.store.readEvents({ ...(cursor !== undefined ? { cursor } : {}), limit: 100 });
      if (page.events.length === 0) return;
      for (const event of page.events) {
        if (this.stopping.signal.aborted) return;
        if (!matchEvent(event, filter)) {
          cursor = event.id;
          continue;
        }
        await this.deliver(rule, event);
        // Stopped mid-delivery: the event is not done with; the next run sends it again.
        if (this.stopping.signal.aborted) return;
        // Written after each delivery (a skipped event only needs the page's write below).
        cursor = event.id;
        if (!(await save())) return;
      }
      if (!(await save())) return;
    }
  }

  private async deliver(rule: AlertRule, event: StoreEvent): Promise<void> {
    let error = '';
    for (let attempt = 1; attempt <= this.maxAttempts; attempt++) {
      try {
        const res = await fetch(rule.url, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'x-portbandit-delivery': `${rule.name}/${event.id}` },
          body: JSON.stringify({ rule: rule.name, query: rule.query, event }),
          signal: AbortSignal.any([AbortSignal.timeout(this.timeoutMs), this.stopping.signal]),
        });
        await res.body?.cancel();
        if (res.ok) return;
        error = `HTTP ${res.status}`;
      } catch (cause) {
        error = (cause as Error).message;
      }
      if (this.stopping.signal.aborted) return;
      this.log(`alert ${rule.name}: event ${event.id} attempt ${attempt}/${this.maxAttempts} failed: ${error}`);
      if (attempt < this.maxAttempts) {
        await sleep(Math.min(this.maxDelayMs, this.baseDelayMs * 2 ** (attempt - 1)), undefined, { signal: this.stopping.signal }).catch(
          () => undefined,
        );
        if (this.stopping.signal.aborted) return;
      }
    }
    const letter: DeadLetter = {
      id: `${rule.name}/${event.id}`,
      rule: rule.name,
      url: rule.url,
      event,
      attempts: this.maxAttempts,
      error,
      failedAt: this.now(),
    };
    await this.store.putDocument(DEAD, letter.id, letter, { at: this.now() });
  }
}
