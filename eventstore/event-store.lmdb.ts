/**
 * The embedded event store: LMDB files under the data directory.
 *
 * Layout (one LMDB environment, five named databases):
 *   log      position → record [stream, revision, id, type, recordedAtMs, data, metadata]
 *   index    [stream, revision] → position
 *   ids      event id → position (idempotent retries, and one id per event)
 *   streams  stream → [last revision, deleted flag]
 *   meta     "head" → last position ever assigned (never reused, even when the
 *            newest events are deleted, so a subscriber's checkpoint stays valid)
 *
 * Appends run as lmdb-js asynchronous transactions: every append queued in one
 * event turn shares one LMDB commit (group commit), and an append is
 * acknowledged only after that commit is flushed to disk. Each append runs in
 * a child transaction, so a failure rolls back that append alone.
 * Subscribers wait on a promise resolved after each commit; they never poll.
 */
import { open, type Database, type RootDatabase } from 'lmdb';
import { Packr } from 'msgpackr';
import {
  type AppendOptions,
  type AppendResult,
  assertValidAppend,
  assertValidStreamName,
  type EventData,
  type EventFilter,
  type EventStore,
  EventTooLargeError,
  IdempotencyConflictError,
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

export interface LmdbEventStoreOptions {
  /** Directory holding the LMDB files; created when missing. */
  readonly path: string;
  /** Largest append accepted, in encoded bytes. */
  readonly maxAppendBytes?: number;
}

type StoredRecord = [string, number, string, string, number, JsonObject, JsonObject | null];
type StreamState = [lastRevision: number, deleted: 0 | 1];

const DEFAULT_MAX_APPEND_BYTES = 16 * 1024 * 1024;
const PAGE_SIZE = 512;
const HEAD_KEY = 'head';

/** Opens (creating if needed) the embedded event store at `options.path`. */
export async function openLmdbEventStore(options: LmdbEventStoreOptions): Promise<EventStore> {
  const root = open({ path: options.path, maxDbs: 8, compression: false });
  return new LmdbEventStore(root, options.maxAppendBytes ?? DEFAULT_MAX_APPEND_BYTES);
}

class LmdbEventStore implements EventStore {
  readonly kind = 'lmdb';
  private readonly log: Database<Buffer, number>;
  private readonly index: Database<number, [string, number]>;
  private readonly ids: Database<number, string>;
  private readonly streams: Database<StreamState, string>;
  private readonly meta: Database<number, string>;
  private readonly packr = new Packr({ useRecords: false });
  private commitSignal = signal();
  private closed = false;

  constructor(
    private readonly root: RootDatabase,
    private readonly maxAppendBytes: number,
  ) {
    this.log = root.openDB({ name: 'log', encoding: 'binary' });
    this.index = root.openDB({ name: 'index', encoding: 'ordered-binary' });
    this.ids = root.openDB({ name: 'ids', encoding: 'ordered-binary' });
    this.streams = root.openDB({ name: 'streams' });
    this.meta = root.openDB({ name: 'meta', encoding: 'ordered-binary' });
  }

  async append(stream: string, events: readonly EventData[], options: AppendOptions = {}): Promise<AppendResult> {
    this.assertOpen();
    const expected = options.expected ?? 'any';
    assertValidAppend(stream, events, expected);
    const recordedAt = Date.now();
    // Encode before the transaction: the write lock is held only for index work.
    const bodies = events.map((event) =>
      this.packr.pack([event.id.toLowerCase(), event.type, recordedAt, event.data, event.metadata ?? null]),
    );
    const bytes = bodies.reduce((sum, body) => sum + body.length, 0);
    if (bytes > this.maxAppendBytes) throw new EventTooLargeError(stream, bytes, this.maxAppendBytes);

    const result = await this.root.childTransaction(() => this.appendInTransaction(stream, events, bodies, expected));
    await this.root.flushed;
    this.signalCommit();
    return result;
  }

  private appendInTransaction(
    stream: string,
    events: readonly EventData[],
    bodies: readonly Buffer[],
    expected: AppendOptions['expected'],
  ): AppendResult {
    const state = this.streams.get(stream);
    if (state?.[1] === 1) throw new StreamDeletedError(stream);
    const current = state ? state[0] : -1;

    const retried = this.findRetry(stream, events);
    if (retried) return retried;

    if (
      (expected === 'no_stream' && current !== -1) ||
      (expected === 'exists' && current === -1) ||
      (typeof expected === 'number' && expected !== current)
    ) {
      throw new WrongExpectedVersionError(stream, expected ?? 'any', current === -1 ? 'no_stream' : current);
    }
    const head = this.meta.get(HEAD_KEY) ?? 0;
    if (events.length === 0) {
      return { nextExpectedRevision: current, position: toPosition(head) };
    }
    bodies.forEach((body, i) => {
      const position = head + 1 + i;
      const revision = current + 1 + i;
      this.log.put(position, this.packRecord(stream, revision, body));
      this.index.put([stream, revision], position);
      this.ids.put((events[i] as EventData).id.toLowerCase(), position);
    });
    const last = current + events.length;
    this.streams.put(stream, [last, 0]);
    this.meta.put(HEAD_KEY, head + events.length);
    return { nextExpectedRevision: last, position: toPosition(head + events.length) };
  }

  /**
   * A retry is an append whose event ids are all in this stream already, in the
   * same order and contiguous: it succeeds again with the original result.
   * Ids that exist only in part, or in another stream, are a conflict.
   */
  private findRetry(stream: string, events: readonly EventData[]): AppendResult | undefined {
    const positions = events.map((event) => this.ids.get(event.id.toLowerCase()));
    const known = positions.filter((position) => position !== undefined);
    if (known.length === 0) return undefined;
    const records = known.map((position) => this.readRecord(position));
    const isRetry =
      known.length === events.length &&
      records.every(
        (record, i) =>
          record[0] === stream && record[1] === (records[0] as StoredRecord)[1] + i && record[2] === events[i]?.id.toLowerCase(),
      );
    if (!isRetry) {
      throw new IdempotencyConflictError(
        stream,
        events.filter((_, i) => positions[i] !== undefined).map((event) => event.id),
      );
    }
    const lastRecord = records[records.length - 1] as StoredRecord;
    return { nextExpectedRevision: lastRecord[1], position: toPosition(known[known.length - 1] as number) };
  }

  async deleteStream(stream: string): Promise<void> {
    this.assertOpen();
    assertValidStreamName(stream);
    await this.root.childTransaction(() => {
      const state = this.streams.get(stream);
      if (state?.[1] === 1) return;
      for (const { key, value: position } of this.index.getRange({ start: [stream, 0], end: [stream, Number.MAX_SAFE_INTEGER] })) {
        const record = this.readRecord(position);
        this.ids.remove(record[2]);
        this.log.remove(position);
        this.index.remove(key);
      }
      this.streams.put(stream, [state ? state[0] : -1, 1]);
    });
    await this.root.flushed;
  }

  async *readStream(stream: string, options: ReadStreamOptions = {}): AsyncGenerator<RecordedEvent> {
    this.assertOpen();
    const state = this.streams.get(stream);
    if (!state) throw new StreamNotFoundError(stream);
    if (state[1] === 1) throw new StreamDeletedError(stream);
    const backwards = options.direction === 'backwards';
    const from = options.fromRevision ?? (backwards ? 'end' : 'start');
    let next = from === 'start' ? 0 : from === 'end' ? state[0] + (backwards ? 0 : 1) : from;
    let remaining = options.maxCount ?? Number.POSITIVE_INFINITY;
    while (remaining > 0 && next >= 0) {
      const page = [
        ...this.index.getRange({
          start: [stream, next],
          end: backwards ? [stream, -1] : [stream, Number.MAX_SAFE_INTEGER],
          reverse: backwards,
          limit: Math.min(PAGE_SIZE, remaining),
        }),
      ];
      if (page.length === 0) return;
      const events = page.map(({ value }) => this.readEvent(value));
      remaining -= events.length;
      next = (events[events.length - 1] as RecordedEvent).revision + (backwards ? -1 : 1);
      yield* events;
      this.assertOpen();
    }
  }

  async *readAll(options: ReadAllOptions = {}): AsyncGenerator<RecordedEvent> {
    this.assertOpen();
    const backwards = options.direction === 'backwards';
    const from = options.from ?? (backwards ? 'end' : 'start');
    let next = from === 'start' ? 1 : from === 'end' ? this.head() + (backwards ? 0 : 1) : Number(from.commit);
    let remaining = options.maxCount ?? Number.POSITIVE_INFINITY;
    while (remaining > 0) {
      const page = this.readPage(next, backwards, options.filter);
      for (const event of page.events.slice(0, remaining)) yield event;
      remaining -= page.events.length;
      if (page.last === undefined) return;
      next = page.last + (backwards ? -1 : 1);
      this.assertOpen();
    }
  }

  async *subscribeAll(options: SubscribeAllOptions = {}): AsyncGenerator<RecordedEvent> {
    this.assertOpen();
    const { signal, filter } = options;
    const from = options.from ?? 'start';
    let after = from === 'start' ? 0 : from === 'end' ? this.head() : Number(from.commit);
    const aborted = new Promise<void>((resolve) => signal?.addEventListener('abort', () => resolve(), { once: true }));
    while (!this.closed && !signal?.aborted) {
      // Take the signal before reading, so an append landing between the
      // read and the wait still wakes us.
      const committed = this.commitSignal.promise;
      const page = this.readPage(after + 1, false, filter);
      if (page.last !== undefined) after = page.last;
      for (const event of page.events) {
        if (signal?.aborted) return;
        yield event;
      }
      if (page.last === undefined) await Promise.race([committed, aborted]);
    }
  }

  async headPosition(): Promise<Position | undefined> {
    this.assertOpen();
    for (const key of this.log.getKeys({ reverse: true, limit: 1 })) return toPosition(key);
    return undefined;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.signalCommit();
    await this.root.close();
  }

  /** Reads up to one page of the log from `start`; `last` is the last position scanned. */
  private readPage(start: number, backwards: boolean, filter: EventFilter | undefined) {
    const events: RecordedEvent[] = [];
    let last: number | undefined;
    const range = this.log.getRange({
      start,
      ...(backwards ? { end: 0, reverse: true } : {}),
      limit: PAGE_SIZE,
    });
    for (const { key, value } of range) {
      last = key;
      const record = this.packr.unpack(value) as StoredRecord;
      if (matchesFilter(filter, record[0], record[3])) events.push(toRecordedEvent(record, key));
    }
    return { events, last };
  }

  private readRecord(position: number): StoredRecord {
    const value = this.log.get(position);
    if (!value) throw new Error(`log is inconsistent: no event at position ${position}`);
    return this.packr.unpack(value) as StoredRecord;
  }

  private readEvent(position: number): RecordedEvent {
    return toRecordedEvent(this.readRecord(position), position);
  }

  private packRecord(stream: string, revision: number, body: Buffer): Buffer {
    // The body is a packed array of five items; prefixing stream and revision
    // turns it into the packed seven-item record without re-encoding the data.
    const header = this.packr.pack([stream, revision]);
    const record = Buffer.allocUnsafe(header.length + body.length - 1);
    record[0] = 0x97; // fixarray of 7
    header.copy(record, 1, 1);
    body.copy(record, header.length, 1);
    return record;
  }

  private head(): number {
    return this.meta.get(HEAD_KEY) ?? 0;
  }

  private signalCommit(): void {
    const { resolve } = this.commitSignal;
    this.commitSignal = signal();
    resolve();
  }

  private assertOpen(): void {
    if (this.closed) throw new StoreClosedError(this.kind);
  }
}

/** A promise with its resolver (Promise.withResolvers needs Node 22). */
function signal(): { promise: Promise<void>; resolve: () => void } {
  let resolve = () => {};
  const promise = new Promise<void>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

function toPosition(sequence: number): Position {
  const value = BigInt(sequence);
  return { commit: value, prepare: value };
}

function toRecordedEvent(record: StoredRecord, position: number): RecordedEvent {
  const [stream, revision, id, type, recordedAt, data, metadata] = record;
  return {
    id,
    type,
    stream,
    revision,
    position: toPosition(position),
    data,
    metadata: metadata ?? {},
    recordedAt: new Date(recordedAt),
  };
}
