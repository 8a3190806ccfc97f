import { describe, expect, test } from 'vitest';
import { guardDefaults, isPseudoHost, looksLossy, screenBatch } from '../../strategies/guards.js';
import type { HostResult } from '../../strategies/types.js';

const range = (a: number, n: number) => Array.from({ length: n }, (_, i) => a + i);

function result(i: number, over: Partial<HostResult> & Pick<HostResult, 'probed' | 'open'>): HostResult {
  return { ip: `198.18.0.${i}`, tags: [], prefix: '198.18.0.0/24', epoch: 1, previousOpen: [], sweep: false, ...over };
}

describe('guard rails', () => {
  test('a host answering on every probed port is a pseudo-service host; a normal one is not', () => {
    expect(isPseudoHost(result(1, { probed: range(1, 100), open: range(1, 100) }), { pseudoThreshold: 1000 })).toBe(true);
    expect(isPseudoHost(result(1, { probed: [], open: range(1, 1001), sweep: true }), { pseudoThreshold: 1000 })).toBe(true);
    expect(isPseudoHost(result(1, { probed: range(1, 100), open: [22, 80, 443] }), { pseudoThreshold: 1000 })).toBe(false);
    // A small allowance with a few open ports is a normal host, not a pseudo one.
    expect(isPseudoHost(result(1, { probed: [22, 80, 443], open: [22, 80, 443] }), { pseudoThreshold: 1000 })).toBe(false);
  });

  test('pseudo hosts are dropped from what teaches, and counted', () => {
    const batch = [result(1, { probed: range(1, 100), open: range(1, 100) }), result(2, { probed: range(1, 100), open: [22] })];
    const s = screenBatch(batch, { pseudoThreshold: 1000 });
    expect(s.verdict).toEqual({ learned: 1, pseudo: 1, lossy: false });
    expect(s.teach.map((r) => r.ip)).toEqual(['198.18.0.2']);
  });

  test('a batch where previously open services all look closed is flagged lossy and teaches nothing', () => {
    const lost = range(1, 10).map((i) => result(i, { previousOpen: [22, 80], probed: [22, 80, 443], open: [] }));
    expect(looksLossy(lost)).toBe(true);
    const s = screenBatch(lost, { pseudoThreshold: 1000 });
    expect(s.verdict).toEqual({ learned: 0, pseudo: 0, lossy: true });
    expect(s.teach).toEqual([]);
  });

  test('normal churn (a few services closed) is not loss, nor is a batch with too few re-probes', () => {
    const churn = range(1, 10).map((i) => result(i, { previousOpen: [22, 80], probed: [22, 80, 443], open: i < 3 ? [22] : [22, 80] }));
    expect(looksLossy(churn)).toBe(false);
    const few = range(1, guardDefaults.lossMinHosts - 1).map((i) => result(i, { previousOpen: [22], probed: [22], open: [] }));
    expect(looksLossy(few)).toBe(false);
  });
});
