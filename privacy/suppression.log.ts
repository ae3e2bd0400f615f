/**
 * The suppression list of server mode: changes appended to one stream of the
 * log (KurrentDB), which every ingest process reads at start and follows, so
 * an identifier suppressed through one process is refused by all of them
 * within moments. Only keyed hashes are written, never values, under
 * `suppressed` (not `identifiers`, which the resolver reads as a fact's).
 */
import {
  type EventStore,
  type RecordedEvent,
  StreamNotFoundError,
} from '../eventstore/event-store.js';
import type { Identifier } from '../schemas/identifier.js';
import type { SuppressionList } from './suppression.js';

export const SUPPRESSION_STREAM = 'privacy-suppression';
const ADDED = 'suppression.added';
const REMOVED = 'suppression.removed';

/** Reads the list from the log, then follows it until closed. */
export async function openLogSuppressionList(options: {
  readonly eventStore: EventStore;
  /** Told when following the log fails (the list then stays as it was); a pino logger fits. */
  readonly log?: { error(fields: object, message: string): void };
}): Promise<SuppressionList> {
  const { eventStore } = options;
  const suppressed = new Set<string>();
  const key = (identifier: Pick<Identifier, 'type' | 'hash'>) =>
    `${identifier.type}:${identifier.hash}`;
  const apply = (event: RecordedEvent) => {
    const identifiers = (event.data.suppressed ?? []) as { type: string; hash: string }[];
    for (const identifier of identifiers)
      if (event.type === ADDED) suppressed.add(key(identifier));
      else if (event.type === REMOVED) suppressed.delete(key(identifier));
  };
  // Following starts where the log's head was before the read: what lands in between is
  // applied again, in order, which leaves the same set.
  const head = await eventStore.headPosition();
  try {
    for await (const event of eventStore.readStream(SUPPRESSION_STREAM)) apply(event);
  } catch (error) {
    if (!(error instanceof StreamNotFoundError)) throw error;
  }
  const controller = new AbortController();
  const following = (async () => {
    for await (const event of eventStore.subscribeAll({
      from: head ?? 'start',
      filter: { streamPrefixes: [SUPPRESSION_STREAM] },
      signal: controller.signal,
    }))
      if (event.stream === SUPPRESSION_STREAM) apply(event);
  })().catch((error: unknown) => {
    if (!controller.signal.aborted)
      options.log?.error({ err: error }, 'stopped following the suppression list');
  });
  const change = async (type: string, identifiers: readonly Identifier[]) => {
    if (identifiers.length === 0) return;
    const written = identifiers.map(({ type, hash }) => ({ type, hash }));
    await eventStore.append(SUPPRESSION_STREAM, [
      { id: crypto.randomUUID(), type, data: { suppressed: written } },
    ]);
    // Applied here at once; following the log applies it again, harmlessly.
    apply({ type, data: { suppressed: written } } as unknown as RecordedEvent);
  };
  return {
    has: (identifier) => suppressed.has(key(identifier)),
    add: (identifiers) => change(ADDED, identifiers),
    remove: (identifiers) => change(REMOVED, identifiers),
    close: async () => {
      controller.abort();
      await following;
    },
  };
}
