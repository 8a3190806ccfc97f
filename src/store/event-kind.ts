/** What changed on a host between two visits (its own module: the query language and the store types both need it). */
export type EventKind = 'service-new' | 'service-closed' | 'service-changed' | 'host-new' | 'host-gone';

/** Every event kind, in documentation order. */
export const EVENT_KINDS: readonly EventKind[] = ['service-new', 'service-closed', 'service-changed', 'host-new', 'host-gone'];
