import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PortbanditError } from '../src/core/index.js';
import type { CellResult } from './types.js';

/**
 * Finished cells, one JSON file per cell under DIR/cells/, named by the cell's key (a hash of
 * its full spec and the software version). Files are written to a temporary name and renamed,
 * so an interrupted run never leaves a half-written cell that a resumed run would trust.
 */
export class CellCache {
  readonly dir: string;

  constructor(outDir: string) {
    this.dir = join(outDir, 'cells');
    try {
      mkdirSync(this.dir, { recursive: true });
    } catch (error) {
      throw new PortbanditError('PB_ERR_IO', `cannot create the cell cache: ${(error as Error).message}`, {
        where: this.dir,
        cause: error,
      });
    }
  }

  private path(key: string): string {
    return join(this.dir, `${key}.json`);
  }

  /** The cached result of a cell, or undefined when absent or unreadable (then it reruns). */
  get(key: string): CellResult | undefined {
    let text: string;
    try {
      text = readFileSync(this.path(key), 'utf8');
    } catch {
      return undefined;
    }
    try {
      const value = JSON.parse(text) as CellResult;
      return value.key === key ? value : undefined;
    } catch {
      return undefined;
    }
  }

  /** Store a finished cell atomically. */
  put(result: CellResult): void {
    const target = this.path(result.key);
    const temp = `${target}.${process.pid}.tmp`;
    try {
      writeFileSync(temp, JSON.stringify(result));
      renameSync(temp, target);
    } catch (error) {
      throw new PortbanditError('PB_ERR_IO', `cannot write a cached cell: ${(error as Error).message}`, { where: target, cause: error });
    }
  }
}
