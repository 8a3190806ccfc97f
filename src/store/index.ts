export type * from './types.js';
export { DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE } from './types.js';
export type * from './query-ast.js';
export { TERM_FIELDS, tokenizeText } from './query-ast.js';
export { parseQuery, printQuery } from './query.js';
export { matchScan } from './match-scan.js';
export { canonicalIp, ipMatches } from './ip-key.js';
export { openSqliteStore } from './sqlite-store.js';
export type { SqliteStoreOptions } from './sqlite-store.js';
