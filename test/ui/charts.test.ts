import { describe, expect, test } from 'vitest';
import { hourTick, renderScansPerHourChart } from '../../src/coordinator/ui/charts.js';

describe('the dashboard hour chart', () => {
  test('hour ticks read as UTC hours, and midnight as its date', () => {
    expect(hourTick(new Date(Date.UTC(2026, 11, 5, 9)))).toBe('09:00');
    expect(hourTick(new Date(Date.UTC(2026, 11, 5, 21)))).toBe('21:00');
    expect(hourTick(new Date(Date.UTC(2026, 11, 5, 0)))).toBe('Dec 5');
  });

  test('a 24 h window that starts and ends at 09:00 shows the date at midnight between them', async () => {
    const since = Date.UTC(2026, 11, 4, 9);
    const chart = String(
      await renderScansPerHourChart([{ hourStart: Date.UTC(2026, 11, 5, 8), scans: 32 }], since, since + 24 * 3_600_000),
    );
    const ticks = [...chart.matchAll(/<text[^>]*>([^<]+)<\/text>/g)].map((m) => m[1]);
    expect(ticks).toContain('Dec 5');
    expect(ticks).toContain('09:00');
    expect(ticks.indexOf('Dec 5')).toBeGreaterThan(ticks.indexOf('09:00'));
  });
});
