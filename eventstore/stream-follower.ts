import type { EventReader, RecordedEvent } from './event-store.js';
import { readStreamIfExists } from './read-stream.js';

/** A small stream folded in memory and kept current by reading only what is new. */
export interface StreamFollower {
  /** Applies the events appended since the last call (by any process); a missing stream is empty. */
  refresh(): Promise<void>;
}

/**
 * Follows `stream`: each `refresh()` hands the events after the last one
 * seen to `apply`, in order. For registries kept in one stream (keys,
 * segment definitions) that several processes append to.
 */
export function followStream(
  reader: Pick<EventReader, 'readStream'>,
  stream: string,
  apply: (event: RecordedEvent) => void,
): StreamFollower {
  let revision = -1;
  let running: Promise<void> | undefined;
  const read = async () => {
    for await (const event of readStreamIfExists(reader, stream, { fromRevision: revision + 1 })) {
      apply(event);
      revision = event.revision;
    }
  };
  return {
    // One read at a time: two overlapping reads would apply the same events twice.
    refresh: () => {
      running ??= read().finally(() => {
        running = undefined;
      });
      return running;
    },
  };
}
