import { type FSWatcher, watch } from 'node:fs';

/**
 * Tells waiting subscribers that the log has grown. Appends in this process
 * call `committed()`; commits by other processes on the same files are seen
 * through a watch on the LMDB data file. While any subscriber is live the
 * watch keeps the process alive, as an open server subscription would.
 */
export class CommitSignal {
  private next = deferred();
  private watcher: FSWatcher | undefined;
  private subscribers = 0;

  constructor(private readonly dataFile: string) {}

  /** A promise for the next commit; take it before reading, so no commit slips between. */
  nextCommit(): Promise<void> {
    return this.next.promise;
  }

  /**
   * Resolves on `commit` (taken from `nextCommit()`) or when `signal` aborts,
   * leaving no listener behind either way: a subscriber waits here once per
   * idle spell, for as long as the process runs.
   */
  static until(commit: Promise<void>, signal: AbortSignal | undefined): Promise<void> {
    if (!signal) return commit;
    if (signal.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const onAbort = () => resolve();
      signal.addEventListener('abort', onAbort, { once: true });
      void commit.then(() => {
        signal.removeEventListener('abort', onAbort);
        resolve();
      });
    });
  }

  /** Wakes everyone waiting. */
  committed(): void {
    const { resolve } = this.next;
    this.next = deferred();
    resolve();
  }

  subscriberStarted(): void {
    this.subscribers++;
    if (!this.watcher) {
      try {
        this.watcher = watch(this.dataFile, () => this.committed());
        this.watcher.on('error', () => this.stopWatching());
      } catch {
        // No file watching here (some network file systems): in-process appends still wake subscribers.
      }
    }
    this.watcher?.ref();
  }

  subscriberEnded(): void {
    this.subscribers--;
    if (this.subscribers === 0) this.watcher?.unref();
  }

  /** Stops watching and wakes everyone, so they see the store closed. */
  close(): void {
    this.stopWatching();
    this.committed();
  }

  private stopWatching(): void {
    this.watcher?.close();
    this.watcher = undefined;
  }
}

/** A promise with its resolver (Promise.withResolvers needs Node 22). */
function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve = () => {};
  const promise = new Promise<void>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}
