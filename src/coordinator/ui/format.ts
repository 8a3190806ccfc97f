/** Small formatters shared by the pages (UTC everywhere: scans come from many time zones). */

/** `2026-11-23 02:00:00Z` for a time in ms, or a dash. */
export function formatTime(ms: number | undefined): string {
  if (ms === undefined || !Number.isFinite(ms)) return '—';
  return new Date(ms)
    .toISOString()
    .replace('T', ' ')
    .replace(/\.\d{3}Z$/, 'Z');
}

/** "3 min ago" relative to `now`, or "never". */
export function formatAgo(ms: number | undefined, now: number): string {
  if (ms === undefined) return 'never';
  const s = Math.max(0, Math.round((now - ms) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86_400) return `${(s / 3600).toFixed(1)} h ago`;
  return `${(s / 86_400).toFixed(1)} d ago`;
}

/** Thousands separators for counts (big scope sizes arrive as decimal strings). */
export function formatCount(n: number | bigint | string): string {
  const text = typeof n === 'string' ? n : String(n);
  return /^\d+$/.test(text) ? text.replace(/\B(?=(\d{3})+(?!\d))/g, ',') : text;
}

/** A fraction as a percentage with one decimal. */
export function formatPercent(x: number): string {
  return `${(x * 100).toFixed(1)}%`;
}

/** The URL path of a host page (IPv6 colons are fine in a path segment, but encode anyway). */
export function hostHref(ip: string): string {
  return `/ui/host/${encodeURIComponent(ip)}`;
}
