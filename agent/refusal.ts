import type { CoordinatorClient } from './coordinator-client.js';
import type { RefusedItem } from './scan-batch.js';

/**
 * Log a refused work item (one clear line on stderr) and report it to the coordinator
 * (`POST /api/v1/agent/refused`), so the operator sees why a host is not being scanned. The
 * report is best effort: a coordinator that cannot take it changes nothing here.
 */
export async function reportRefusal(client: CoordinatorClient, refused: RefusedItem, log: (line: string) => void): Promise<void> {
  const raw = refused.item as unknown as { leaseId?: unknown; ip?: unknown } | null;
  const leaseId = typeof raw?.leaseId === 'string' && /^[\x21-\x7e]{1,64}$/.test(raw.leaseId) ? raw.leaseId : undefined;
  const ip = JSON.stringify(raw?.ip)?.slice(0, 80) ?? 'no address';
  log(`agent: refused work item ${leaseId ?? '(no readable lease id)'} for ${ip}: ${refused.reason}`);
  if (leaseId === undefined) return;
  try {
    await client.reportRefused(leaseId, refused.reason);
  } catch (error) {
    log(`agent: could not report the refusal of ${leaseId}: ${(error as Error).message}`);
  }
}
