export type * from './types.js';
export { DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE } from './types.js';
export type * from './query-ast.js';
export { TERM_FIELDS, tokenizeText } from './query-ast.js';
export { parseQuery, printQuery } from './query.js';
