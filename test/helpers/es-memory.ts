import { Client, errors, type DiagnosticResult } from '@elastic/elasticsearch';
import ClientMockModule from '@elastic/elasticsearch-mock';
import { ipMatches } from '../../src/store/ip-key.js';

// The package is CommonJS with an ESM-style `export default` in its typings: at run time the
// default import is the class itself, while NodeNext typing sees the module object.
const ClientMock = ClientMockModule as unknown as typeof ClientMockModule.default;
type ClientMock = InstanceType<typeof ClientMock>;

/**
 * FOR QUERY TRANSLATION AND CONTRACT TESTS ONLY, not evidence that the store works on a real
 * cluster: one shard, no refresh interval, 429s only when a test asks for them (issue 13). What only a real
 * Elasticsearch can show runs when PORTBANDIT_ES_URL is set (docs/store.md). `es-http.ts` serves
 * it over HTTP on loopback for a `serve` process; same caveat.
 *
 * An in-memory stand-in for the part of Elasticsearch 8 that the scan index uses, plugged
 * into the official client through @elastic/elasticsearch-mock (which only routes HTTP calls to
 * handlers; the behaviour below is ours). It is strict on purpose: any API, query clause, sort
 * or aggregation outside this subset is answered with HTTP 400, so the store cannot silently
 * start relying on something this double does not model. Modelled:
 *
 * - indices: exists (HEAD), create with `mappings` (dynamic: strict enforced), add fields (PUT _mapping), delete, refresh;
 * - keyword terms: Lucene's limit (a value over 32,766 UTF-8 bytes fails the document) unless
 *   the field has `ignore_above` (then such values are accepted; that they are not indexed is
 *   not modelled);
 * - documents: index / create (`op_type`, `if_seq_no` + `if_primary_term` -> 409), get, delete;
 * - _bulk: `index` / `create` items, external versions (`external`, `external_gte` -> 409),
 *   per-item results; `rejectBulk` answers 429 for the first N requests, to test backoff;
 * - _search and _count with query bool (filter, must, must_not, should + minimum_should_match),
 *   term, terms, range (numeric fields), exists, match_all; `term` on an `ip` field accepts a CIDR block;
 * - sort by fields (asc/desc), from/size, search_after, track_total_hits, seq_no_primary_term;
 * - aggregations: terms (order by _count/_key), histogram (interval, min_doc_count), sum.
 *
 * - refresh: with `nearRealTime` on, search sees an index as of its last refresh (no interval:
 *   only an explicit `_refresh` or a write's `refresh` parameter refreshes); off, at once.
 *
 * Not modelled: refresh intervals, shards, scoring, analysis (we only use
 * keyword/ip/long/integer fields), scripts, bulk update/delete items, delete tombstones of
 * external versions (index.gc_deletes), partial failures other than 429 and mapping errors.
 */
export function createMemoryElasticsearchClient(): { client: Client; cluster: MemoryCluster } {
  const mock = new ClientMock();
  const cluster = new MemoryCluster();
  cluster.register(mock);
  const client = new Client({ node: 'http://198.18.0.1:9200', Connection: mock.getConnection() });
  return { client, cluster };
}

type FieldType = 'keyword' | 'ip' | 'long' | 'integer' | 'object';
type Source = Record<string, unknown>;

interface StoredDoc {
  source: Source;
  seqNo: number;
  version: number;
}

interface MemoryIndex {
  fields: Map<string, FieldType>;
  /** Keyword fields with `ignore_above`. */
  ignoreAbove: Map<string, number>;
  strict: boolean;
  docs: Map<string, StoredDoc>;
  /** What search and count see when `nearRealTime` is on: the documents as of the last refresh. */
  searchable: Map<string, StoredDoc>;
  nextSeqNo: number;
}

interface Request {
  method: string;
  path: string;
  querystring: Record<string, string>;
  body: unknown;
}

function fail(statusCode: number, type: string, reason: string): errors.ResponseError {
  const meta = {
    body: { error: { type, reason }, status: statusCode },
    statusCode,
    headers: {},
    warnings: null,
  } as unknown as DiagnosticResult;
  return new errors.ResponseError(meta);
}

/** The cluster's state; exposed so tests can assert on it. */
export class MemoryCluster {
  readonly indices = new Map<string, MemoryIndex>();
  /**
   * Off (default): every write is visible to search at once. On: search and count see each
   * index as of its last refresh (`_refresh`, or a write with `refresh=true|wait_for`), while
   * get by id stays real-time, as in Elasticsearch; so a test can show what never relies on a refresh.
   */
  nearRealTime = false;

  /**
   * Load shedding: while `remaining` > 0, each `_bulk` request is answered with 429
   * `es_rejected_execution_exception`, for every item (`as: 'items'`, the usual form: HTTP 200,
   * `errors: true`) or for the whole request (`as: 'request'`), and `remaining` counts down.
   */
  rejectBulk: { remaining: number; as: 'items' | 'request' } | undefined;
  /** `_bulk` requests received, rejected ones included. */
  bulkRequests = 0;

  private refreshIndex(index: MemoryIndex): void {
    index.searchable = new Map(index.docs);
  }

  private visible(index: MemoryIndex): Map<string, StoredDoc> {
    return this.nearRealTime ? index.searchable : index.docs;
  }

  private refreshIfAsked(index: MemoryIndex, qs: Record<string, string>): void {
    if (qs.refresh === 'true' || qs.refresh === 'wait_for' || qs.refresh === '') this.refreshIndex(index);
  }

  register(mock: ClientMock): void {
    const handle = (request: Request): unknown => {
      try {
        return this.dispatch(request);
      } catch (error) {
        if (error instanceof errors.ResponseError) return error;
        return fail(400, 'parsing_exception', (error as Error).message);
      }
    };
    mock.add({ method: ['GET', 'POST', 'PUT', 'DELETE', 'HEAD'], path: '*' }, handle as never);
  }

  private dispatch(request: Request): unknown {
    const parts = request.path.split('/').filter(Boolean).map(decodeURIComponent);
    const [indexName, op, id] = parts;
    if (indexName === undefined) throw fail(400, 'illegal_argument_exception', `unsupported path ${request.path}`);
    const { method } = request;
    if (parts.length === 1 && indexName === '_bulk' && (method === 'POST' || method === 'PUT')) return this.bulk(request);
    if (parts.length === 1) {
      if (method === 'HEAD') return this.indices.has(indexName) ? '' : fail(404, 'index_not_found_exception', indexName);
      if (method === 'PUT') return this.createIndex(indexName, request.body as { mappings?: unknown });
      if (method === 'DELETE') {
        if (!this.indices.delete(indexName)) throw fail(404, 'index_not_found_exception', indexName);
        return { acknowledged: true };
      }
    }
    if (parts.length === 2 && op === '_refresh' && (method === 'POST' || method === 'GET')) {
      const names = indexName.split(',');
      for (const name of names) if (!this.indices.has(name)) throw fail(404, 'index_not_found_exception', `no such index [${name}]`);
      for (const name of names) this.refreshIndex(this.indices.get(name)!);
      return { _shards: { total: names.length, successful: names.length, failed: 0 } };
    }
    const index = this.indices.get(indexName);
    if (!index) throw fail(404, 'index_not_found_exception', `no such index [${indexName}]`);
    if (parts.length === 2 && op === '_mapping' && method === 'PUT')
      return this.addMapping(index, request.body as { properties?: unknown });
    if (parts.length === 2 && op === '_search' && (method === 'POST' || method === 'GET'))
      return this.search(index, (request.body ?? {}) as Source);
    if (parts.length === 2 && op === '_count' && (method === 'POST' || method === 'GET')) {
      const body = (request.body ?? {}) as Source;
      checkKeys(body, ['query'], '_count body');
      const predicate = compileQuery(index, body.query ?? { match_all: {} });
      return { count: [...this.visible(index).values()].filter((doc) => predicate(doc.source)).length };
    }
    if (parts.length === 3 && id !== undefined) {
      if (op === '_doc' && method === 'GET') return this.get(indexName, index, id);
      if (op === '_doc' && method === 'DELETE') return this.delete(indexName, index, id, request.querystring);
      if ((op === '_doc' || op === '_create') && (method === 'PUT' || method === 'POST')) {
        const create = op === '_create' || request.querystring.op_type === 'create';
        return this.write(indexName, index, id, request.body as Source, create, request.querystring);
      }
    }
    throw fail(400, 'illegal_argument_exception', `the in-memory cluster does not model ${method} ${request.path}`);
  }

  private createIndex(name: string, body: { mappings?: unknown } | null): unknown {
    if (this.indices.has(name)) throw fail(400, 'resource_already_exists_exception', `index [${name}] already exists`);
    const mappings = (body?.mappings ?? {}) as {
      dynamic?: string;
      properties?: Record<string, { type?: string; ignore_above?: number; enabled?: boolean }>;
    };
    const fields = new Map<string, FieldType>();
    const ignoreAbove = new Map<string, number>();
    for (const [field, spec] of Object.entries(mappings.properties ?? {})) {
      const type = spec.type ?? 'object';
      if (!['keyword', 'ip', 'long', 'integer', 'object'].includes(type))
        throw fail(400, 'mapper_parsing_exception', `field type ${type} not modelled`);
      for (const key of Object.keys(spec)) {
        if (!['type', 'ignore_above', 'enabled'].includes(key))
          throw fail(400, 'mapper_parsing_exception', `mapping parameter [${key}] not modelled`);
      }
      if (spec.ignore_above !== undefined) {
        if (type !== 'keyword' || !Number.isInteger(spec.ignore_above) || spec.ignore_above < 0)
          throw fail(400, 'mapper_parsing_exception', `[ignore_above] on [${field}]`);
        ignoreAbove.set(field, spec.ignore_above);
      }
      fields.set(field, type as FieldType);
    }
    this.indices.set(name, {
      fields,
      ignoreAbove,
      strict: mappings.dynamic === 'strict',
      docs: new Map(),
      searchable: new Map(),
      nextSeqNo: 0,
    });
    return { acknowledged: true, index: name };
  }

  /** PUT /index/_mapping: new fields only (changing a field's type is refused, as in ES). */
  private addMapping(index: MemoryIndex, body: { properties?: unknown } | null): unknown {
    checkKeys(body ?? {}, ['properties'], '_mapping body');
    for (const [field, spec] of Object.entries((body?.properties ?? {}) as Record<string, { type?: string }>)) {
      const type = (spec.type ?? 'object') as FieldType;
      if (!['keyword', 'ip', 'long', 'integer', 'object'].includes(type))
        throw fail(400, 'mapper_parsing_exception', `field type ${type} not modelled`);
      const known = index.fields.get(field);
      if (known !== undefined && known !== type)
        throw fail(400, 'illegal_argument_exception', `mapper [${field}] cannot be changed from type [${known}] to [${type}]`);
      index.fields.set(field, type);
    }
    return { acknowledged: true };
  }

  private get(indexName: string, index: MemoryIndex, id: string): unknown {
    const doc = index.docs.get(id);
    if (!doc) return fail(404, 'not_found', `${indexName}/${id}`);
    return {
      _index: indexName,
      _id: id,
      _version: doc.version,
      _seq_no: doc.seqNo,
      _primary_term: 1,
      found: true,
      _source: structuredClone(doc.source),
    };
  }

  private checkVersion(doc: StoredDoc | undefined, qs: Record<string, string>, id: string): void {
    if (qs.if_seq_no === undefined) return;
    if (!doc || doc.seqNo !== Number(qs.if_seq_no) || Number(qs.if_primary_term) !== 1) {
      throw fail(409, 'version_conflict_engine_exception', `[${id}]: version conflict, required seqNo [${qs.if_seq_no}]`);
    }
  }

  /** `version_type` external (stored version must be lower) or external_gte (lower or equal); undefined when internal. */
  private externalVersion(doc: StoredDoc | undefined, qs: Record<string, string>, id: string, create: boolean): number | undefined {
    if (qs.version_type === undefined) return undefined;
    if (create)
      throw fail(400, 'action_request_validation_exception', 'create operations only support internal versioning. use index instead');
    if (qs.version_type !== 'external' && qs.version_type !== 'external_gte')
      throw fail(400, 'illegal_argument_exception', `version_type [${qs.version_type}] is not modelled`);
    const version = Number(qs.version);
    if (!Number.isSafeInteger(version) || version < 0)
      throw fail(400, 'action_request_validation_exception', `illegal version value [${qs.version}] for version type [${qs.version_type}]`);
    if (doc && (qs.version_type === 'external' ? version <= doc.version : version < doc.version)) {
      throw fail(
        409,
        'version_conflict_engine_exception',
        `[${id}]: version conflict, current version [${doc.version}] is higher${qs.version_type === 'external' ? ' or equal to' : ' than'} the one provided [${version}]`,
      );
    }
    return version;
  }

  private write(indexName: string, index: MemoryIndex, id: string, source: Source, create: boolean, qs: Record<string, string>): unknown {
    const existing = index.docs.get(id);
    if (create && existing) throw fail(409, 'version_conflict_engine_exception', `[${id}]: version conflict, document already exists`);
    this.checkVersion(existing, qs, id);
    const version = this.externalVersion(existing, qs, id, create);
    validateSource(index, source);
    const doc = { source: structuredClone(source), seqNo: index.nextSeqNo++, version: version ?? (existing?.version ?? 0) + 1 };
    index.docs.set(id, doc);
    this.refreshIfAsked(index, qs);
    return {
      _index: indexName,
      _id: id,
      _version: doc.version,
      result: existing ? 'updated' : 'created',
      _seq_no: doc.seqNo,
      _primary_term: 1,
    };
  }

  private delete(indexName: string, index: MemoryIndex, id: string, qs: Record<string, string>): unknown {
    const existing = index.docs.get(id);
    this.checkVersion(existing, qs, id);
    if (!existing) return fail(404, 'not_found', `${indexName}/${id}`);
    index.docs.delete(id);
    this.refreshIfAsked(index, qs);
    return { _index: indexName, _id: id, result: 'deleted', _seq_no: index.nextSeqNo++, _primary_term: 1 };
  }

  /**
   * POST /_bulk with `index` and `create` actions only (`_index`, `_id`, and `version` +
   * `version_type` external/external_gte on `index`); items are applied in order, each
   * succeeding or failing alone, as in Elasticsearch.
   */
  private bulk(request: Request): unknown {
    const lines = request.body;
    if (!Array.isArray(lines) || lines.length % 2 !== 0) throw new Error('_bulk body must be pairs of action and document lines');
    checkKeys(request.querystring ?? {}, ['refresh'], '_bulk parameters');
    this.bulkRequests++;
    const shed = this.rejectBulk !== undefined && this.rejectBulk.remaining > 0;
    if (shed) this.rejectBulk!.remaining--;
    const rejected = () =>
      fail(429, 'es_rejected_execution_exception', 'rejected execution of coordinating operation [in-memory double: rejectBulk]');
    if (shed && this.rejectBulk!.as === 'request') throw rejected();
    const items: Source[] = [];
    const touched = new Set<MemoryIndex>();
    for (let i = 0; i < lines.length; i += 2) {
      const [op, meta] = single(lines[i], 'bulk action') as [string, Source];
      if (op !== 'index' && op !== 'create') throw new Error(`bulk action [${op}] is not modelled by the in-memory cluster`);
      checkKeys(meta, ['_index', '_id', 'version', 'version_type'], `bulk ${op}`);
      const indexName = String(meta._index);
      const id = String(meta._id);
      try {
        if (shed) throw rejected();
        const index = this.indices.get(indexName);
        if (!index) throw fail(404, 'index_not_found_exception', `no such index [${indexName}]`);
        const qs: Record<string, string> =
          meta.version_type === undefined ? {} : { version: String(meta.version), version_type: String(meta.version_type) };
        const result = this.write(indexName, index, id, lines[i + 1] as Source, op === 'create', qs) as Source;
        touched.add(index);
        items.push({ [op]: { ...result, status: result.result === 'created' ? 201 : 200 } });
      } catch (error) {
        if (!(error instanceof errors.ResponseError)) throw error;
        const body = error.body as { error: Source };
        items.push({ [op]: { _index: indexName, _id: id, status: error.statusCode, error: body.error } });
      }
    }
    for (const index of touched) this.refreshIfAsked(index, request.querystring ?? {});
    return { took: 0, errors: items.some((item) => (Object.values(item)[0] as { status: number }).status >= 300), items };
  }

  private search(index: MemoryIndex, body: Source): unknown {
    checkKeys(body, ['query', 'sort', 'size', 'from', 'search_after', 'track_total_hits', 'seq_no_primary_term', 'aggs'], '_search body');
    const predicate = compileQuery(index, body.query ?? { match_all: {} });
    const sort = parseSort(body.sort);
    for (const key of sort) fieldType(index, key.field);
    const all = [...this.visible(index).entries()].filter(([, doc]) => predicate(doc.source));
    const sortValues = (source: Source): unknown[] => sort.map(({ field }) => firstValue(source[field]));
    all.sort(([, a], [, b]) => compareTuples(sortValues(a.source), sortValues(b.source), sort));
    let hits = all;
    if (body.search_after !== undefined) {
      if (!Array.isArray(body.search_after) || body.search_after.length !== sort.length)
        throw new Error('search_after must match the sort');
      const after = body.search_after as unknown[];
      hits = hits.filter(([, doc]) => compareTuples(sortValues(doc.source), after, sort) > 0);
    }
    const from = (body.from as number | undefined) ?? 0;
    const size = (body.size as number | undefined) ?? 10;
    const page = hits.slice(from, from + size);
    const response: Source = {
      took: 0,
      timed_out: false,
      hits: {
        total: { value: all.length, relation: 'eq' },
        hits: page.map(([id, doc]) => ({
          _index: 'memory',
          _id: id,
          _score: null,
          _source: structuredClone(doc.source),
          sort: sortValues(doc.source),
          ...(body.seq_no_primary_term ? { _seq_no: doc.seqNo, _primary_term: 1 } : {}),
        })),
      },
    };
    if (body.aggs !== undefined)
      response.aggregations = aggregate(
        index,
        all.map(([, doc]) => doc.source),
        body.aggs as Source,
      );
    return response;
  }
}

function checkKeys(object: unknown, allowed: readonly string[], what: string): void {
  if (typeof object !== 'object' || object === null) throw new Error(`${what} must be an object`);
  for (const key of Object.keys(object))
    if (!allowed.includes(key)) throw new Error(`${what}: [${key}] is not modelled by the in-memory cluster`);
}

function validateSource(index: MemoryIndex, source: Source): void {
  for (const [field, value] of Object.entries(source)) {
    const type = index.fields.get(field);
    if (type === undefined) {
      if (index.strict)
        throw fail(400, 'strict_dynamic_mapping_exception', `mapping set to strict, dynamic introduction of [${field}] is not allowed`);
      continue;
    }
    for (const item of Array.isArray(value) ? value : [value]) {
      // A disabled object field still has to hold an object (scalars there are not relied upon).
      if (type === 'object') {
        if (typeof item !== 'object' || item === null || Array.isArray(value))
          throw fail(400, 'document_parsing_exception', `[${field}] expects an object`);
        continue;
      }
      if (item === null) continue;
      if ((type === 'long' || type === 'integer') && !Number.isInteger(item))
        throw fail(400, 'document_parsing_exception', `[${field}] expects an integer, got ${JSON.stringify(item)}`);
      if (type === 'keyword' && typeof item !== 'string') throw fail(400, 'document_parsing_exception', `[${field}] expects a string`);
      if (type === 'keyword' && !index.ignoreAbove.has(field) && Buffer.byteLength(item as string, 'utf8') > 32_766) {
        throw fail(
          400,
          'document_parsing_exception',
          `Document contains at least one immense term in field="${field}" (whose UTF8 encoding is longer than the max length 32766)`,
        );
      }
      if (type === 'ip' && (typeof item !== 'string' || !ipMatches(item, item)))
        throw fail(400, 'document_parsing_exception', `[${field}] expects an ip`);
    }
  }
}

function valuesOf(source: Source, field: string): unknown[] {
  const value = source[field];
  if (value === undefined || value === null) return [];
  return Array.isArray(value) ? value : [value];
}

function firstValue(value: unknown): unknown {
  return Array.isArray(value) ? value[0] : value;
}

function fieldType(index: MemoryIndex, field: string): FieldType {
  const type = index.fields.get(field);
  if (type === undefined || type === 'object') throw new Error(`field [${field}] is not a mapped searchable field`);
  return type;
}

function termMatches(type: FieldType, stored: unknown, wanted: unknown): boolean {
  switch (type) {
    case 'ip':
      return ipMatches(String(stored), String(wanted));
    case 'long':
    case 'integer':
      return Number(stored) === Number(wanted);
    default:
      return String(stored) === String(wanted);
  }
}

function single(clause: unknown, what: string): [string, unknown] {
  const entries = Object.entries(clause as Source);
  if (entries.length !== 1) throw new Error(`[${what}] takes exactly one field`);
  return entries[0]!;
}

type Predicate = (source: Source) => boolean;

/** Compile a query into a predicate, validating all of it up front (even if no document exists). */
function compileQuery(index: MemoryIndex, query: unknown): Predicate {
  const [kind, clause] = single(query, 'query');
  switch (kind) {
    case 'match_all':
      return () => true;
    case 'exists': {
      // Elasticsearch's exists: the field has at least one non-null value (an empty array has none).
      checkKeys(clause, ['field'], 'exists');
      const field = (clause as { field?: unknown }).field;
      if (typeof field !== 'string') throw new Error('[exists] expects a field name');
      fieldType(index, field);
      return (source) => valuesOf(source, field).some((value) => value !== null && value !== undefined);
    }
    case 'term': {
      const [field, spec] = single(clause, 'term');
      const wanted = typeof spec === 'object' && spec !== null ? (spec as Source).value : spec;
      const type = fieldType(index, field);
      return (source) => valuesOf(source, field).some((value) => termMatches(type, value, wanted));
    }
    case 'terms': {
      const [field, wanted] = single(clause, 'terms');
      if (!Array.isArray(wanted)) throw new Error('[terms] expects an array');
      const type = fieldType(index, field);
      return (source) => valuesOf(source, field).some((value) => wanted.some((w) => termMatches(type, value, w)));
    }
    case 'range': {
      const [field, spec] = single(clause, 'range');
      const type = fieldType(index, field);
      if (type !== 'long' && type !== 'integer') throw new Error(`[range] is only modelled on numeric fields, not [${field}]`);
      checkKeys(spec, ['gt', 'gte', 'lt', 'lte'], 'range');
      const bounds = spec as Record<string, number>;
      return (source) =>
        valuesOf(source, field).some((raw) => {
          const v = Number(raw);
          return (
            (bounds.gt === undefined || v > bounds.gt) &&
            (bounds.gte === undefined || v >= bounds.gte) &&
            (bounds.lt === undefined || v < bounds.lt) &&
            (bounds.lte === undefined || v <= bounds.lte)
          );
        });
    }
    case 'bool': {
      checkKeys(clause, ['filter', 'must', 'must_not', 'should', 'minimum_should_match'], 'bool');
      const b = clause as Record<string, unknown>;
      const list = (value: unknown): Predicate[] =>
        (value === undefined ? [] : Array.isArray(value) ? value : [value]).map((q) => compileQuery(index, q));
      const required = [...list(b.filter), ...list(b.must)];
      const mustNot = list(b.must_not);
      const should = list(b.should);
      const minimum = (b.minimum_should_match as number | undefined) ?? (required.length === 0 && should.length > 0 ? 1 : 0);
      return (source) =>
        required.every((q) => q(source)) && !mustNot.some((q) => q(source)) && should.filter((q) => q(source)).length >= minimum;
    }
    default:
      throw new Error(`query [${kind}] is not modelled by the in-memory cluster`);
  }
}

interface SortKey {
  field: string;
  desc: boolean;
}

function parseSort(sort: unknown): SortKey[] {
  if (sort === undefined) return [];
  return (Array.isArray(sort) ? sort : [sort]).map((item) => {
    const [field, spec] = single(item, 'sort');
    const order = typeof spec === 'string' ? spec : (spec as { order?: string }).order;
    if (order !== 'asc' && order !== 'desc') throw new Error(`sort order for [${field}] must be asc or desc`);
    return { field, desc: order === 'desc' };
  });
}

function compareValues(a: unknown, b: unknown): number {
  if (a === b) return 0;
  if (a === undefined || a === null) return 1;
  if (b === undefined || b === null) return -1;
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  return String(a) < String(b) ? -1 : String(a) > String(b) ? 1 : 0;
}

function compareTuples(a: unknown[], b: unknown[], sort: SortKey[]): number {
  for (const [i, key] of sort.entries()) {
    const c = compareValues(a[i], b[i]);
    if (c !== 0) return key.desc ? -c : c;
  }
  return 0;
}

function aggregate(index: MemoryIndex, sources: Source[], aggs: Source): Source {
  const out: Source = {};
  for (const [name, spec] of Object.entries(aggs)) {
    const [kind, options] = single(spec, 'aggregation');
    const o = options as Source;
    if (kind === 'sum') {
      checkKeys(o, ['field'], 'sum');
      const field = o.field as string;
      fieldType(index, field);
      out[name] = { value: sources.reduce((acc, s) => acc + valuesOf(s, field).reduce((x: number, v) => x + Number(v), 0), 0) };
    } else if (kind === 'terms') {
      checkKeys(o, ['field', 'size', 'order'], 'terms');
      const field = o.field as string;
      const numeric = fieldType(index, field) !== 'keyword';
      const counts = new Map<string | number, number>();
      for (const s of sources)
        for (const v of new Set(valuesOf(s, field))) counts.set(v as string | number, (counts.get(v as string | number) ?? 0) + 1);
      const order = (o.order ?? [{ _count: 'desc' }, { _key: 'asc' }]) as Record<string, string>[];
      const buckets = [...counts.entries()].map(([key, doc_count]) => ({ key: numeric ? Number(key) : key, doc_count }));
      buckets.sort((a, b) => {
        for (const item of order) {
          const [by, dir] = single(item, 'terms order');
          const c = by === '_count' ? a.doc_count - b.doc_count : compareValues(a.key, b.key);
          if (c !== 0) return dir === 'desc' ? -c : c;
        }
        return 0;
      });
      out[name] = {
        doc_count_error_upper_bound: 0,
        sum_other_doc_count: 0,
        buckets: buckets.slice(0, (o.size as number | undefined) ?? 10),
      };
    } else if (kind === 'histogram') {
      checkKeys(o, ['field', 'interval', 'min_doc_count'], 'histogram');
      const field = o.field as string;
      const interval = o.interval as number;
      if (o.min_doc_count !== 1) throw new Error('only histogram min_doc_count 1 is modelled');
      const counts = new Map<number, number>();
      for (const s of sources)
        for (const v of valuesOf(s, field)) {
          const key = Math.floor(Number(v) / interval) * interval;
          counts.set(key, (counts.get(key) ?? 0) + 1);
        }
      out[name] = { buckets: [...counts.entries()].sort((a, b) => a[0] - b[0]).map(([key, doc_count]) => ({ key, doc_count })) };
    } else {
      throw new Error(`aggregation [${kind}] is not modelled by the in-memory cluster`);
    }
  }
  return out;
}
