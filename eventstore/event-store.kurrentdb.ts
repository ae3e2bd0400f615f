/**
 * The server event store: KurrentDB through `@kurrent/kurrentdb-client` 1.x. The
 * port follows KurrentDB's semantics, so this mostly translates names, bigints and
 * errors. Where the two differ: the server's own events (`$` types and streams)
 * never reach callers, and readAll reads on when dropping them leaves it short of
 * `maxCount`; reading `$all` backwards from a position is exclusive on the server
 * and inclusive in the port, so the event at that position is fetched first.
 *
 * Deleting tombstones the stream; truncating sets its `$tb` metadata. KurrentDB
 * keeps the bytes until a scavenge runs, and until then the removed events stay
 * readable from `$all`. Scavenging is the operator's job, not this adapter's:
 * `scrub` does nothing (see there).
 */
import { addAbortSignal } from 'node:stream';
import * as kdb from '@kurrent/kurrentdb-client';
import {
  type AppendOptions,
  assertValidAppend,
  assertValidStreamName,
  assertValidTruncate,
  comparePositions,
  type EventData,
  type EventFilter,
  type EventStore,
  EventTooLargeError,
  type ExpectedState,
  type JsonObject,
  matchesFilter,
  type Position,
  type ReadAllOptions,
  type ReadStreamOptions,
  type RecordedEvent,
  StoreClosedError,
  StreamDeletedError,
  StreamNotFoundError,
  type SubscribeAllOptions,
  WrongExpectedVersionError,
} from './event-store.js';

/** Concurrent metadata writes to one stream: how often a truncation re-reads and tries again. */
const METADATA_ATTEMPTS = 3;

/** KurrentDB's default MaxAppendSize; a server configured higher needs `maxAppendBytes` raised too. */
const DEFAULT_MAX_APPEND_BYTES = 1_048_576;

/** Opens an event store on a KurrentDB server; the client connects on first use, not here. */
export async function openKurrentDbEventStore(options: {
  connectionString: string;
  maxAppendBytes?: number;
}): Promise<EventStore> {
  const client = kdb.KurrentDBClient.connectionString(options.connectionString);
  return new KurrentDbEventStore(client, options.maxAppendBytes ?? DEFAULT_MAX_APPEND_BYTES);
}

class KurrentDbEventStore implements EventStore {
  readonly kind = 'kurrentdb';
  private closed = false;
  /** Live subscriptions, so close() can end them rather than leave their consumers waiting. */
  private readonly live = new Set<AbortController>();

  constructor(
    private readonly client: kdb.KurrentDBClient,
    private readonly limit: number,
  ) {}

  async append(stream: string, events: readonly EventData[], options: AppendOptions = {}) {
    this.assertOpen();
    const expected = options.expected ?? 'any';
    assertValidAppend(stream, events, expected);
    // Checked here so an oversized append costs no round trip; the server checks its own limit too.
    const bytes = events.reduce((sum, e) => sum + jsonBytes(e.data) + jsonBytes(e.metadata), 0);
    if (bytes > this.limit) throw new EventTooLargeError(stream, bytes, this.limit);
    const proposed = events.map(({ id, type, data, metadata }) =>
      kdb.jsonEvent({ id, type, data, ...(metadata ? { metadata } : {}) }),
    );
    const streamState = toStreamState(expected);
    let result: kdb.AppendResult;
    try {
      // The server answers a retry of the same ids at the same expected state with the
      // original write's result, so idempotency needs no bookkeeping here.
      result = await this.client.appendToStream(stream, proposed, { streamState });
    } catch (error) {
      throw portError(error, stream, expected, bytes);
    }
    const { position, nextExpectedRevision: next } = result;
    // Only reachable when the connection string sets throwOnAppendFailure=false.
    if (!result.success) throw new WrongExpectedVersionError(stream, expected, toActual(next));
    // Old EventStoreDB servers omitted it for an idempotent retry; current ones always send it.
    if (!position) throw new Error(`KurrentDB did not say where "${stream}" was written`);
    return { nextExpectedRevision: Number(next), position: copyPosition(position) };
  }

  async *readStream(stream: string, options: ReadStreamOptions = {}) {
    this.assertOpen();
    assertValidStreamName(stream);
    const forwards = options.direction !== 'backwards';
    const from = options.fromRevision ?? (forwards ? 'start' : 'end');
    if (options.maxCount !== undefined && options.maxCount <= 0) return;
    try {
      for await (const { event } of this.client.readStream(stream, {
        direction: forwards ? kdb.FORWARDS : kdb.BACKWARDS,
        fromRevision: from === 'start' ? kdb.START : from === 'end' ? kdb.END : BigInt(from),
        ...(options.maxCount !== undefined ? { maxCount: options.maxCount } : {}),
      })) {
        if (event && !event.type.startsWith('$')) yield toRecorded(event);
      }
    } catch (error) {
      throw portError(error, stream);
    }
  }

  async *readAll(options: ReadAllOptions = {}) {
    this.assertOpen();
    const { filter } = options;
    const forwards = options.direction !== 'backwards';
    let remaining = options.maxCount ?? Number.POSITIVE_INFINITY;
    if (remaining <= 0 || (filter && prefixesOf(filter).length === 0)) return;
    const from = options.from ?? (forwards ? 'start' : 'end');
    if (!forwards && typeof from === 'object') {
      // Unfiltered, so the read cannot run past `from` looking for a match.
      for await (const resolved of this.client.readAll({ fromPosition: from, maxCount: 1 })) {
        const event = userEvent(resolved, filter);
        if (event && comparePositions(event.position, from) === 0) {
          remaining--;
          yield event;
        }
      }
    }
    const start = readPosition(from);
    let after: Position | undefined; // where the previous page ended, once there was one
    while (remaining > 0) {
      // A forward page restarts inclusively at the previous page's last event: ask for one more.
      const requested = Number.isFinite(remaining) ? remaining + (after ? 1 : 0) : undefined;
      let received = 0;
      let last: Position | undefined;
      for await (const resolved of this.client.readAll({
        direction: forwards ? kdb.FORWARDS : kdb.BACKWARDS,
        fromPosition: after ?? start,
        filter: serverFilter(filter),
        ...(requested !== undefined ? { maxCount: requested } : {}),
      })) {
        received++;
        const position = resolved.event?.position;
        last = position ?? last;
        if (after && position && comparePositions(position, after) === 0) continue;
        const event = userEvent(resolved, filter);
        if (!event) continue;
        remaining--;
        yield event;
        if (remaining === 0) return;
      }
      if (requested === undefined || received < requested || !last) return;
      after = copyPosition(last);
    }
  }

  async *subscribeAll(options: SubscribeAllOptions = {}) {
    this.assertOpen();
    const { signal, filter } = options;
    if (signal?.aborted) return;
    const stop = new AbortController();
    this.live.add(stop);
    const ended = signal ? AbortSignal.any([signal, stop.signal]) : stop.signal;
    const subscription = this.client.subscribeToAll({
      fromPosition: readPosition(options.from ?? 'start'),
      filter: serverFilter(filter),
    });
    // Destroying the stream on abort wakes a consumer that is waiting for the next event.
    addAbortSignal(ended, subscription);
    try {
      for await (const resolved of subscription) {
        const event = userEvent(resolved, filter);
        if (event) yield event;
      }
    } catch (error) {
      if (!ended.aborted) throw error;
    } finally {
      this.live.delete(stop);
      // Nobody reads the stream any more: a late gRPC error must not go uncaught.
      subscription.on('error', () => {});
      await subscription.unsubscribe().catch(() => {});
    }
  }

  async deleteStream(stream: string): Promise<void> {
    this.assertOpen();
    assertValidStreamName(stream);
    try {
      await this.client.tombstoneStream(stream, { expectedRevision: kdb.ANY });
    } catch (error) {
      const mapped = portError(error, stream);
      if (!(mapped instanceof StreamDeletedError)) throw mapped;
    }
  }

  /**
   * Sets the stream's `$tb` (truncate before), keeping the rest of its
   * metadata; the write expects the metadata stream's revision it read, so a
   * concurrent truncation can never lower `$tb` again (it re-reads and tries
   * again). The revision is capped at the last event + 1: a `$tb` beyond the
   * end would hide the stream's next appends too. A missing stream gets no
   * metadata, for the same reason. The truncated events stay in `$all`, and
   * on disk, until a scavenge; a scavenge keeps a stream's last event even
   * then (KurrentDB's docs/server/features/streams.md).
   */
  async truncateBefore(stream: string, revision: number): Promise<number> {
    this.assertOpen();
    assertValidTruncate(stream, revision);
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.truncateOnce(stream, revision);
      } catch (error) {
        if (!(error instanceof kdb.WrongExpectedVersionError) || attempt === METADATA_ATTEMPTS) {
          throw portError(error, stream);
        }
      }
    }
  }

  private async truncateOnce(stream: string, revision: number): Promise<number> {
    const last = await this.edgeRevision(stream, kdb.BACKWARDS);
    // Missing, deleted, or nothing readable (truncated to its end already).
    if (last === undefined) return 0;
    const first = (await this.edgeRevision(stream, kdb.FORWARDS)) ?? last + 1;
    const before = Math.min(revision, last + 1);
    if (before <= first) return 0;
    const current = await this.currentMetadata(stream);
    const { $tb: _previous, ...kept } = current?.data ?? {};
    await this.client.setStreamMetadata(
      stream,
      { ...kept, truncateBefore: before },
      { expectedRevision: current?.revision ?? kdb.NO_STREAM },
    );
    return before - first;
  }

  /** The revision of the stream's first (forwards) or last (backwards) readable event. */
  private async edgeRevision(stream: string, direction: kdb.Direction) {
    const fromRevision = direction === kdb.FORWARDS ? kdb.START : kdb.END;
    const edge: kdb.ReadStreamOptions = { direction, fromRevision, maxCount: 1 };
    try {
      for await (const { event } of this.client.readStream(stream, edge)) {
        if (event) return Number(event.revision);
      }
    } catch (error) {
      const mapped = portError(error, stream);
      if (mapped instanceof StreamNotFoundError || mapped instanceof StreamDeletedError) {
        return undefined;
      }
      throw mapped;
    }
    return undefined;
  }

  /**
   * The stream's metadata as stored (`$`-keys, which `setStreamMetadata`
   * writes back unchanged) and its revision in the metadata stream. Read
   * here, not with `getStreamMetadata`: client 1.3 reports an `$all`
   * position as that revision.
   */
  private async currentMetadata(stream: string) {
    const newest = { direction: kdb.BACKWARDS, fromRevision: kdb.END, maxCount: 1 } as const;
    try {
      for await (const { event } of this.client.readStream(kdb.metastreamOf(stream), newest)) {
        if (!event) continue;
        const data = event.isJson ? asJsonObject(event.data) : {};
        return { data, revision: event.revision };
      }
    } catch (error) {
      if (!(error instanceof kdb.StreamNotFoundError)) throw error;
    }
    return undefined;
  }

  /**
   * Does nothing: deleted events leave KurrentDB's files only when a scavenge
   * rewrites the chunks holding them, and this client (1.x) cannot start one.
   * Its public API has no scavenge call (the Operations service's
   * StartScavenge exists only in its generated gRPC code); a scavenge runs per
   * node and needs operations rights, which an application's connection
   * should not hold. Operators scavenge every node after erasures (`POST
   * /admin/scavenge`, the admin UI, or auto-scavenge); until then the erased
   * people's personal data is unreadable anyway, because their keys are
   * destroyed.
   */
  async scrub(): Promise<void> {
    this.assertOpen();
  }

  async headPosition(): Promise<Position | undefined> {
    this.assertOpen();
    // Any event counts, the server's own included: the head is where the log ends.
    const newest = { direction: kdb.BACKWARDS, fromPosition: kdb.END, maxCount: 1 } as const;
    for await (const { event } of this.client.readAll(newest)) {
      if (event?.position) return copyPosition(event.position);
    }
    return undefined;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const stop of this.live) stop.abort();
    await this.client.dispose();
  }

  private assertOpen(): void {
    if (this.closed) throw new StoreClosedError(this.kind);
  }
}

const streamStates = { any: kdb.ANY, no_stream: kdb.NO_STREAM, exists: kdb.STREAM_EXISTS } as const;

function toStreamState(expected: ExpectedState): kdb.AppendStreamState {
  return typeof expected === 'number' ? BigInt(expected) : streamStates[expected];
}

/** The client reports a missing stream as `no_stream` or as a negative revision, by code path. */
function toActual(current: bigint | 'no_stream'): number | 'no_stream' {
  return typeof current === 'bigint' && current >= 0n ? Number(current) : 'no_stream';
}

/** The port's error for a client error, or the error itself when the port has no name for it. */
function portError(error: unknown, stream: string, expected: ExpectedState = 'any', bytes = 0) {
  if (error instanceof kdb.WrongExpectedVersionError) {
    return new WrongExpectedVersionError(stream, expected, toActual(error.actualState));
  }
  if (error instanceof kdb.StreamDeletedError || error instanceof kdb.StreamTombstonedError) {
    return new StreamDeletedError(stream);
  }
  if (error instanceof kdb.StreamNotFoundError) return new StreamNotFoundError(stream);
  if (error instanceof kdb.MaxAppendSizeExceededError) {
    return new EventTooLargeError(stream, bytes, error.maxAppendSize);
  }
  if (error instanceof kdb.AppendRecordSizeExceededError) {
    return new EventTooLargeError(stream, error.size, error.maxSize);
  }
  return error;
}

const prefixesOf = (filter: EventFilter): readonly string[] =>
  'eventTypePrefixes' in filter ? filter.eventTypePrefixes : filter.streamPrefixes;

/** KurrentDB takes one filter per read: the caller's prefixes, else one that drops system types. */
function serverFilter(filter: EventFilter | undefined): kdb.Filter {
  if (!filter) return kdb.excludeSystemEvents();
  const prefixes = [...prefixesOf(filter)];
  if ('eventTypePrefixes' in filter) return kdb.eventTypeFilter({ prefixes });
  return kdb.streamNameFilter({ prefixes });
}

const readPosition = (from: Position | 'start' | 'end'): kdb.ReadPosition =>
  from === 'start' ? kdb.START : from === 'end' ? kdb.END : copyPosition(from);

/** The port's view of a `$all` event; undefined for the server's own events and filtered ones. */
function userEvent({ event }: kdb.AllStreamResolvedEvent, filter: EventFilter | undefined) {
  if (!event || event.type.startsWith('$') || event.streamId.startsWith('$')) return undefined;
  return matchesFilter(filter, event.streamId, event.type) ? toRecorded(event) : undefined;
}

function toRecorded(event: kdb.RecordedEvent): RecordedEvent {
  if (!event.position) throw new Error(`KurrentDB sent event ${event.id} without its position`);
  return {
    id: event.id,
    type: event.type,
    stream: event.streamId,
    revision: Number(event.revision),
    position: copyPosition(event.position),
    data: asJsonObject(event.data),
    metadata: asJsonObject(event.metadata),
    recordedAt: event.created,
  };
}

/** Tandem writes JSON objects only; anything else (no metadata, a foreign binary event) is `{}`. */
function asJsonObject(value: unknown): JsonObject {
  const isObject = typeof value === 'object' && value !== null && !Array.isArray(value);
  return isObject && !(value instanceof Uint8Array) ? (value as JsonObject) : {};
}

const copyPosition = ({ commit, prepare }: Position): Position => ({ commit, prepare });

const jsonBytes = (value: JsonObject | undefined): number =>
  value ? Buffer.byteLength(JSON.stringify(value)) : 0;
