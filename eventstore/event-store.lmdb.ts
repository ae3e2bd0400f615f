/**
 * The embedded event store: LMDB files under the data directory.
 *
 * Layout (one LMDB environment, five named databases):
 *   log       position → record [stream, revision, id, type, recordedAtMs, data, metadata]
 *   segments  [stream, first revision] → [first position, count, first event id]:
 *             one entry per append, whose events have contiguous revisions and
 *             positions, so a stream is read by expanding its segments
 *   appends   first event id of an append → [stream, first revision]: finds a
 *             retried append (KurrentDB's idempotency: the same ids again)
 *   streams   stream → [last revision, deleted flag]
 *   meta      "head" → last position ever assigned (never reused, even when the
 *             newest events are deleted, so a subscriber's checkpoint stays valid)
 *
 * An append costs one log write per event plus four writes in all. A per-event
 * id index would double the cost: random UUID keys dirty a B-tree page per
 * event, and a commit writes each dirty page.
 *
 * Appends run as lmdb-js asynchronous transactions: every append queued in one
 * event turn shares one LMDB commit (group commit), and an append is
 * acknowledged only after that commit is flushed to disk. Each append runs in
 * a child transaction, so a failure rolls back that append alone — and so its
 * reads see the commits of other processes. (In a plain lmdb-js async
 * transaction callback they did not: two processes read the same stream
 * revision and one append was lost in about 60 stress runs.) Known upstream: under several writing processes lmdb-js 3.5.6
 * crashed inside the child commit (mdb_txn_commit) about once in 150 runs
 * of the multi-process test; its test reports such a crash with the child's
 * output.
 *
 * Subscribers wait on a promise resolved after each commit; they never poll.
 * Commits by other processes on the same files wake them through a file
 * watch on the data file.
 */
import { join } from 'node:path';
import { type Database, open, type RootDatabase } from 'lmdb';
import {
  type AppendOptions,
  type AppendResult,
  assertValidAppend,
  assertValidStreamName,
  type EventData,
  type EventFilter,
  type EventStore,
  EventTooLargeError,
  type ExpectedState,
  IdempotencyConflictError,
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
import { CommitSignal } from './event-store.lmdb.commits.js';
import {
  RecordCodec,
  type StoredRecord,
  toPosition,
  toRecordedEvent,
} from './event-store.lmdb.records.js';

export interface LmdbEventStoreOptions {
  /** Directory holding the LMDB files; created when missing. */
  readonly path: string;
  /** Largest append accepted, in encoded bytes. */
  readonly maxAppendBytes?: number;
}

type Segment = [firstPosition: number, count: number, firstId: string];
type StreamState = [lastRevision: number, deleted: 0 | 1];

const DEFAULT_MAX_APPEND_BYTES = 16 * 1024 * 1024;
const PAGE_SIZE = 512;
const HEAD_KEY = 'head';
const LAST_KEY = Number.MAX_SAFE_INTEGER;

/** Opens (creating if needed) the embedded event store at `options.path`. */
export async function openLmdbEventStore(options: LmdbEventStoreOptions): Promise<EventStore> {
  const root = open({ path: options.path, maxDbs: 8, compression: false });
  return new LmdbEventStore(
    root,
    new CommitSignal(join(options.path, 'data.mdb')),
    options.maxAppendBytes ?? DEFAULT_MAX_APPEND_BYTES,
  );
}

class LmdbEventStore implements EventStore {
  readonly kind = 'lmdb';
  private readonly log: Database<Buffer, number>;
  private readonly segments: Database<Segment, [string, number]>;
  private readonly appends: Database<[string, number], string>;
  private readonly streams: Database<StreamState, string>;
  private readonly meta: Database<number, string>;
  private readonly codec = new RecordCodec();
  private closed = false;

  constructor(
    private readonly root: RootDatabase,
    private readonly commits: CommitSignal,
    private readonly maxAppendBytes: number,
  ) {
    this.log = root.openDB({ name: 'log', encoding: 'binary' });
    this.segments = root.openDB({ name: 'segments' });
    this.appends = root.openDB({ name: 'appends' });
    this.streams = root.openDB({ name: 'streams' });
    this.meta = root.openDB({ name: 'meta', encoding: 'ordered-binary' });
  }

  async append(
    stream: string,
    events: readonly EventData[],
    options: AppendOptions = {},
  ): Promise<AppendResult> {
    this.assertOpen();
    const expected = options.expected ?? 'any';
    assertValidAppend(stream, events, expected);
    const ids = events.map((event) => event.id.toLowerCase());
    const recordedAt = Date.now();
    // Encode before the transaction, so the write lock is held for index work only.
    const bodies = events.map((event, i) => this.codec.body(event, ids[i] as string, recordedAt));
    const bytes = bodies.reduce((sum, body) => sum + body.length, 0);
    if (bytes > this.maxAppendBytes)
      throw new EventTooLargeError(stream, bytes, this.maxAppendBytes);

    const result = await this.root.childTransaction(() =>
      this.appendInTransaction(stream, ids, bodies, expected),
    );
    await this.root.flushed;
    this.commits.committed();
    return result;
  }

  private appendInTransaction(
    stream: string,
    ids: readonly string[],
    bodies: readonly Buffer[],
    expected: ExpectedState,
  ): AppendResult {
    const state = this.streams.get(stream);
    if (state?.[1] === 1) throw new StreamDeletedError(stream);
    const current = state ? state[0] : -1;
    const retried = ids[0] === undefined ? undefined : this.findRetry(stream, ids);
    if (retried) return retried;
    if (
      (expected === 'no_stream' && current !== -1) ||
      (expected === 'exists' && current === -1) ||
      (typeof expected === 'number' && expected !== current)
    ) {
      throw new WrongExpectedVersionError(stream, expected, current === -1 ? 'no_stream' : current);
    }
    const head = this.meta.get(HEAD_KEY) ?? 0;
    if (ids[0] === undefined) return { nextExpectedRevision: current, position: toPosition(head) };

    const header = this.codec.header(stream);
    const records = bodies.map((body, i) => this.codec.record(header, current + 1 + i, body));
    // Nothing below throws: every check is above, so an append is never half written.
    records.forEach((record, i) => {
      this.log.put(head + 1 + i, record);
    });
    this.segments.put([stream, current + 1], [head + 1, ids.length, ids[0]]);
    this.appends.put(ids[0], [stream, current + 1]);
    const last = current + ids.length;
    this.streams.put(stream, [last, 0]);
    this.meta.put(HEAD_KEY, head + ids.length);
    return { nextExpectedRevision: last, position: toPosition(head + ids.length) };
  }

  /**
   * A retry is an append whose event ids are those of an earlier append to
   * the same stream, in the same order: it succeeds with the earlier result.
   * A first id already used otherwise (another stream, other companions) is a
   * conflict, never silently written twice.
   */
  private findRetry(stream: string, ids: readonly string[]): AppendResult | undefined {
    const earlier = this.appends.get(ids[0] as string);
    if (!earlier) return undefined;
    const segment = earlier[0] === stream ? this.segments.get(earlier) : undefined;
    const isRetry =
      segment !== undefined &&
      segment[1] === ids.length &&
      ids.every((id, i) => this.readRecord(segment[0] + i)[2] === id);
    if (!isRetry) throw new IdempotencyConflictError(stream, [ids[0] as string]);
    return {
      nextExpectedRevision: earlier[1] + segment[1] - 1,
      position: toPosition(segment[0] + segment[1] - 1),
    };
  }

  async deleteStream(stream: string): Promise<void> {
    this.assertOpen();
    assertValidStreamName(stream);
    await this.root.childTransaction(() => {
      const state = this.streams.get(stream);
      if (state?.[1] === 1) return;
      for (const { key, value } of this.segments.getRange({
        start: [stream, 0],
        end: [stream, LAST_KEY],
      })) {
        const [firstPosition, count, firstId] = value;
        for (let i = 0; i < count; i++) this.log.remove(firstPosition + i);
        this.appends.remove(firstId);
        this.segments.remove(key);
      }
      this.streams.put(stream, [state ? state[0] : -1, 1]);
    });
    await this.root.flushed;
  }

  async *readStream(
    stream: string,
    options: ReadStreamOptions = {},
  ): AsyncGenerator<RecordedEvent> {
    this.assertOpen();
    const state = this.streams.get(stream);
    if (!state) throw new StreamNotFoundError(stream);
    if (state[1] === 1) throw new StreamDeletedError(stream);
    const backwards = options.direction === 'backwards';
    const from = options.fromRevision ?? (backwards ? 'end' : 'start');
    let next = from === 'start' ? 0 : from === 'end' ? state[0] + (backwards ? 0 : 1) : from;
    let remaining = options.maxCount ?? Number.POSITIVE_INFINITY;
    while (remaining > 0 && next >= 0 && next <= state[0]) {
      const page = this.readStreamPage(stream, next, backwards, Math.min(PAGE_SIZE, remaining));
      if (page.length === 0) return;
      remaining -= page.length;
      next = (page[page.length - 1] as RecordedEvent).revision + (backwards ? -1 : 1);
      yield* page;
      this.assertOpen();
    }
  }

  /** Up to `limit` events of `stream` from revision `from` (inclusive), walking its segments. */
  private readStreamPage(
    stream: string,
    from: number,
    backwards: boolean,
    limit: number,
  ): RecordedEvent[] {
    const page: RecordedEvent[] = [];
    const step = backwards ? -1 : 1;
    let revision = from;
    for (const { key, value } of this.segmentsFrom(stream, from, backwards)) {
      const [firstPosition, count] = value;
      const first = key[1];
      for (
        ;
        revision >= first && revision < first + count && page.length < limit;
        revision += step
      ) {
        page.push(this.readEvent(firstPosition + revision - first));
      }
      if (page.length === limit) break;
    }
    return page;
  }

  /** The segments holding `revision` and those after it (or before it, backwards). */
  private segmentsFrom(stream: string, revision: number, backwards: boolean) {
    // The segment holding `revision` starts at or before it: the nearest key at or below.
    let start: [string, number] = [stream, revision];
    for (const key of this.segments.getKeys({
      start: [stream, revision],
      end: [stream, -1],
      reverse: true,
      limit: 1,
    })) {
      start = key;
    }
    return this.segments.getRange(
      backwards
        ? { start: [stream, revision], end: [stream, -1], reverse: true }
        : { start, end: [stream, LAST_KEY] },
    );
  }

  async *readAll(options: ReadAllOptions = {}): AsyncGenerator<RecordedEvent> {
    this.assertOpen();
    const backwards = options.direction === 'backwards';
    const from = options.from ?? (backwards ? 'end' : 'start');
    let next =
      from === 'start'
        ? 1
        : from === 'end'
          ? this.head() + (backwards ? 0 : 1)
          : Number(from.commit);
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
    const { signal: abort, filter } = options;
    const from = options.from ?? 'start';
    let after = from === 'start' ? 0 : from === 'end' ? this.head() : Number(from.commit);
    const aborted = new Promise<void>((resolve) =>
      abort?.addEventListener('abort', () => resolve(), { once: true }),
    );
    this.commits.subscriberStarted();
    try {
      while (!this.closed && !abort?.aborted) {
        // Take the signal before reading, so an append landing between the
        // read and the wait still wakes us.
        const committed = this.commits.nextCommit();
        const page = this.readPage(after + 1, false, filter);
        if (page.last !== undefined) after = page.last;
        for (const event of page.events) {
          if (abort?.aborted) return;
          yield event;
        }
        if (page.last === undefined) {
          await Promise.race([committed, aborted]);
          this.root.resetReadTxn();
        }
      }
    } finally {
      this.commits.subscriberEnded();
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
    this.commits.close();
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
      const record = this.codec.decode(value);
      if (matchesFilter(filter, record[0], record[3])) events.push(toRecordedEvent(record, key));
    }
    return { events, last };
  }

  private readRecord(position: number): StoredRecord {
    const value = this.log.get(position);
    if (!value) throw new Error(`event log is inconsistent: no event at position ${position}`);
    return this.codec.decode(value);
  }

  private readEvent(position: number): RecordedEvent {
    return toRecordedEvent(this.readRecord(position), position);
  }

  private head(): number {
    return this.meta.get(HEAD_KEY) ?? 0;
  }

  private assertOpen(): void {
    if (this.closed) throw new StoreClosedError(this.kind);
  }
}
