import { hash } from 'node:crypto';
import {
  type EventAppender,
  type EventData,
  type EventReader,
  IdempotencyConflictError,
  StreamNotFoundError,
} from './event-store.js';

/** How far back a composed-differently retry looks for events it already stored. */
const RETRY_LOOKBACK = 1000;

/**
 * Appends, treating events the stream already holds (from an earlier attempt)
 * as done. A retry composed exactly like the first attempt is recognised by
 * the store itself; one composed differently (the store reports an
 * idempotency conflict) reads the stream's recent events and appends only
 * the missing ones. The store knows an append by its first event, so a retry
 * whose first event is new but whose others are stored (`[a, b]`, then
 * `[c, a, b]`) is not recognised: a caller that may be re-sending regrouped
 * events says `mayBeStored`, and the stream is read first.
 */
export async function appendOnce(
  store: EventAppender & Pick<EventReader, 'readStream'>,
  stream: string,
  events: readonly EventData[],
  options: { readonly mayBeStored?: boolean } = {},
): Promise<void> {
  if (options.mayBeStored) return appendMissing(store, stream, events);
  try {
    await store.append(stream, events);
  } catch (error) {
    if (!(error instanceof IdempotencyConflictError)) throw error;
    await appendMissing(store, stream, events);
  }
}

async function appendMissing(
  store: EventAppender & Pick<EventReader, 'readStream'>,
  stream: string,
  events: readonly EventData[],
): Promise<void> {
  const stored = new Set<string>();
  try {
    for await (const event of store.readStream(stream, {
      direction: 'backwards',
      maxCount: RETRY_LOOKBACK,
    }))
      stored.add(event.id);
  } catch (error) {
    if (!(error instanceof StreamNotFoundError)) throw error;
  }
  const missing = events.filter((event) => !stored.has(event.id.toLowerCase()));
  if (missing.length > 0) await store.append(stream, missing);
}

/**
 * A deterministic event id (a UUID in the version 5 layout) from its parts,
 * so the same decision or message made twice is the same event, and the
 * store's idempotency keeps it once.
 */
export function deterministicEventId(...parts: readonly string[]): string {
  const hex = hash('sha256', parts.join('\u0000'), 'hex');
  const variant = ((Number.parseInt(hex[16] as string, 16) & 0x3) | 0x8).toString(16);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-5${hex.slice(13, 16)}-${variant}${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}
