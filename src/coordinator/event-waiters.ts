/**
 * Long-poll waiters: requests that wait for new events (the events stream, `?wait=`) until a
 * result stores some, a timeout, or the server closing.
 */
export class EventWaiters {
  private readonly waiting = new Set<() => void>();

  /** Resolve after `ms` or as soon as `wake` is called, whichever comes first. */
  wait(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.waiting.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.waiting.add(done);
    });
  }

  /** Resolve every pending `wait`. */
  wake(): void {
    for (const w of [...this.waiting]) w();
  }

  /** Waits not yet resolved. */
  get size(): number {
    return this.waiting.size;
  }
}
