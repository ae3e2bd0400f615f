import type { EventStore } from './event-store.js';

/** Where the log lives: LMDB files (embedded default) or a KurrentDB server or cluster. */
export type EventStoreSpec =
  | { readonly kind: 'lmdb'; readonly path: string; readonly maxAppendBytes?: number }
  | {
      readonly kind: 'kurrentdb';
      readonly connectionString: string;
      readonly maxAppendBytes?: number;
    };

/** Opens the event store a spec names. The KurrentDB client is only loaded when asked for. */
export async function openEventStore(spec: EventStoreSpec): Promise<EventStore> {
  switch (spec.kind) {
    case 'lmdb': {
      const { openLmdbEventStore } = await import('./event-store.lmdb.js');
      return openLmdbEventStore(spec);
    }
    case 'kurrentdb': {
      const { openKurrentDbEventStore } = await import('./event-store.kurrentdb.js');
      return openKurrentDbEventStore(spec);
    }
  }
}
