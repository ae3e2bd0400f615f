/**
 * The embedded event store: LMDB files under the data directory.
 *
 * Layout (one LMDB environment, five named databases and the scrub's filler):
 *   log              position → record [stream, revision, id, type, recordedAtMs, data, metadata]
 *   stream-segments  [digest, first revision] → [first position, count, first event id]:
 *                    one entry per append, whose events have contiguous revisions
 *                    and positions, so a stream is read by expanding its segments;
 *                    `truncateBefore` re-keys a segment it cuts (the id then null)
 *   stream-appends   first event id of an append → [digest, first revision]: finds a
 *                    retried append (KurrentDB's idempotency: the same ids again)
 *   stream-states    digest → [last revision, deleted flag]; a deleted stream's
 *                    entry is its tombstone
 *   meta             "head" → last position ever assigned (never reused, even when the
 *                    newest events are deleted, so a subscriber's checkpoint stays valid)
 * The digest is `nameDigest(stream)` (SHA-256): the indexes never hold a
 * stream name, because LMDB keeps removed keys in its branch pages
 * (lmdb-scrub.ts). Stores written before held names (`streams`, `segments`,
 * `appends`); opening one moves them to digests once.
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
 *
 * Erasure and retention: `deleteStream` and `truncateBefore` overwrite every
 * value they remove with zeros first and then re-write the log around what
 * they removed, and `scrub` overwrites the free pages, so the removed events'
 * bytes leave the files; of a deleted stream only its digest stays, as the
 * tombstone (event-store.lmdb.removal.ts has the order; lmdb-scrub.ts says
 * why each step is needed).
 */
import { join } from 'node:path';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { asBinary, type Database, open, type RootDatabase } from 'lmdb';
import {
  type AppendOptions,
  type AppendResult,
  assertValidAppend,
  assertValidStreamName,
  assertValidTruncate,
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
import {
  eventsIn,
  type RemovedRun,
  removeFromIndexes,
  removeFromLog,
  type Segment,
  type StreamIndexes,
} from './event-store.lmdb.removal.js';
import {
  assertComplete,
  FreePageScrubber,
  moveDatabase,
  nameDigest,
  touchAround,
} from './lmdb-scrub.js';

export interface LmdbEventStoreOptions {
  /** Directory holding the LMDB files; created when missing. */
  readonly path: string;
  /** Largest append accepted, in encoded bytes. */
  readonly maxAppendBytes?: number;
}

type StreamState = [lastRevision: number, deleted: 0 | 1];

const DEFAULT_MAX_APPEND_BYTES = 16 * 1024 * 1024;
const PAGE_SIZE = 512;
/**
 * Address space reserved for the log's map: 1 TiB, virtual only (the file
 * grows with the data). lmdb-js otherwise starts at 128 KB and maps the file
 * again each time it outgrows the map, and the earlier maps stay: a 1.5 GB log
 * showed as 2.1 GB of RSS, the same pages counted in several maps.
 */
const MAP_SIZE = 2 ** 40;
const HEAD_KEY = 'head';
/** Two 4 KiB pages' worth of log entries on each side of a deleted run (lmdb-scrub.ts). */
const TOUCH_REACH_BYTES = 2 * 4096;
const LAST_KEY = Number.MAX_SAFE_INTEGER;

/** Opens (creating if needed) the embedded event store at `options.path`. */
export async function openLmdbEventStore(options: LmdbEventStoreOptions): Promise<EventStore> {
  const root = open({ path: options.path, maxDbs: 12, compression: false, mapSize: MAP_SIZE });
  const store = new LmdbEventStore(
    root,
    new CommitSignal(join(options.path, 'data.mdb')),
    options.maxAppendBytes ?? DEFAULT_MAX_APPEND_BYTES,
  );
  await store.moveNamesToDigests();
  return store;
}

class LmdbEventStore implements EventStore {
  readonly kind = 'lmdb';
  private readonly log: Database<StoredRecord, number>;
  /** Keyed by [nameDigest(stream), first revision]. */
  private readonly segments: Database<Segment, [string, number]>;
  /** Valued [nameDigest(stream), first revision]. */
  private readonly appends: Database<[string, number], string>;
  /** Keyed by nameDigest(stream). */
  private readonly streams: Database<StreamState, string>;
  private readonly meta: Database<number, string>;
  private readonly indexes: StreamIndexes;
  private readonly codec = new RecordCodec();
  private readonly scrubber: FreePageScrubber;
  private closed = false;

  constructor(
    private readonly root: RootDatabase,
    private readonly commits: CommitSignal,
    private readonly maxAppendBytes: number,
  ) {
    // lmdb-js takes `encoder` as an option; its types declare it only on the database.
    const logOptions = { name: 'log', encoder: this.codec };
    this.log = root.openDB<StoredRecord, number>(logOptions);
    this.segments = root.openDB({ name: 'stream-segments' });
    this.appends = root.openDB({ name: 'stream-appends' });
    this.streams = root.openDB({ name: 'stream-states' });
    this.meta = root.openDB({ name: 'meta', encoding: 'ordered-binary' });
    this.indexes = { segments: this.segments, appends: this.appends };
    this.scrubber = new FreePageScrubber(root);
  }

  /**
   * Moves a store written before digests (`streams`, `segments`, `appends`,
   * which held names) to the digest-keyed databases, then scrubs, so the
   * names leave with the old pages.
   */
  async moveNamesToDigests(): Promise<void> {
    const digestOf = (stream: string, revision: number): [string, number] => [
      nameDigest(stream),
      revision,
    ];
    const moved = [
      await moveDatabase(
        this.root,
        'streams',
        this.streams,
        (stream: string, state: StreamState) => [nameDigest(stream), state],
      ),
      await moveDatabase(
        this.root,
        'segments',
        this.segments,
        ([stream, revision]: [string, number], segment: Segment) => [
          digestOf(stream, revision),
          segment,
        ],
      ),
      await moveDatabase(
        this.root,
        'appends',
        this.appends,
        (id: string, [stream, revision]: [string, number]) => [id, digestOf(stream, revision)],
      ),
    ];
    if (moved.some((count) => count > 0)) {
      assertComplete(await this.scrubber.scrub(), 'moving the stream indexes to digests');
    }
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

    const key = nameDigest(stream);
    const result = await this.root.childTransaction(() =>
      this.appendInTransaction(stream, key, ids, bodies, expected),
    );
    await this.root.flushed;
    this.commits.committed();
    return result;
  }

  private appendInTransaction(
    stream: string,
    key: string,
    ids: readonly string[],
    bodies: readonly Buffer[],
    expected: ExpectedState,
  ): AppendResult {
    const state = this.streams.get(key);
    if (state?.[1] === 1) throw new StreamDeletedError(stream);
    const current = state ? state[0] : -1;
    const retried = ids[0] === undefined ? undefined : this.findRetry(stream, key, ids);
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
      this.log.put(head + 1 + i, asBinary(record) as unknown as StoredRecord);
    });
    this.segments.put([key, current + 1], [head + 1, ids.length, ids[0]]);
    this.appends.put(ids[0], [key, current + 1]);
    const last = current + ids.length;
    this.streams.put(key, [last, 0]);
    this.meta.put(HEAD_KEY, head + ids.length);
    return { nextExpectedRevision: last, position: toPosition(head + ids.length) };
  }

  /**
   * A retry is an append whose event ids are those of an earlier append to
   * the same stream, in the same order: it succeeds with the earlier result.
   * A first id already used otherwise (another stream, other companions) is a
   * conflict, never silently written twice.
   */
  private findRetry(stream: string, key: string, ids: readonly string[]): AppendResult | undefined {
    const earlier = this.appends.get(ids[0] as string);
    if (!earlier) return undefined;
    const segment = earlier[0] === key ? this.segments.get(earlier) : undefined;
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

  /**
   * Removes the stream's entries from every database, each value overwritten
   * with zeros first; its digest's state entry stays as the tombstone. Then,
   * in a later transaction, re-writes the log entries around each removed
   * run, so that no live page keeps an old copy of a removed event (LMDB
   * leaves copies of moved entries in the pages they left: lmdb-scrub.ts).
   * The freed pages keep the bytes until `scrub`.
   */
  async deleteStream(stream: string): Promise<void> {
    this.assertOpen();
    assertValidStreamName(stream);
    const key = nameDigest(stream);
    const runs = await this.root.childTransaction(() => {
      const state = this.streams.get(key);
      if (state?.[1] === 1) return [];
      const ranges = removeFromIndexes(this.indexes, key, LAST_KEY);
      this.streams.put(key, [state ? state[0] : -1, 1]);
      return removeFromLog(this.log, ranges);
    });
    await this.rewriteAround(runs);
  }

  /**
   * Removes the stream's events before `revision` from the log and the
   * indexes, as `deleteStream` removes a whole stream, but keeps the stream's
   * state: its last revision, so appends and their expected-revision checks
   * go on. A segment the revision cuts keeps its later events under a new key.
   */
  async truncateBefore(stream: string, revision: number): Promise<number> {
    this.assertOpen();
    assertValidTruncate(stream, revision);
    const key = nameDigest(stream);
    const { removed, runs } = await this.root.childTransaction(() => {
      const state = this.streams.get(key);
      if (!state || state[1] === 1) return { removed: 0, runs: [] };
      const ranges = removeFromIndexes(this.indexes, key, Math.min(revision, state[0] + 1));
      return { removed: eventsIn(ranges), runs: removeFromLog(this.log, ranges) };
    });
    await this.rewriteAround(runs);
    return removed;
  }

  /** The re-write after a removal (lmdb-scrub.ts), in its own transaction; then waits for the disk. */
  private async rewriteAround(runs: readonly RemovedRun[]): Promise<void> {
    if (runs.length > 0) {
      await this.root.childTransaction(() => touchAround(this.log, runs, TOUCH_REACH_BYTES));
    }
    await this.root.flushed;
  }

  async scrub(): Promise<void> {
    this.assertOpen();
    assertComplete(await this.scrubber.scrub(), 'scrubbing the event store');
  }

  async *readStream(
    stream: string,
    options: ReadStreamOptions = {},
  ): AsyncGenerator<RecordedEvent> {
    this.assertOpen();
    const key = nameDigest(stream);
    const state = this.streams.get(key);
    if (!state) throw new StreamNotFoundError(stream);
    if (state[1] === 1) throw new StreamDeletedError(stream);
    const backwards = options.direction === 'backwards';
    const from = options.fromRevision ?? (backwards ? 'end' : 'start');
    let next = from === 'start' ? 0 : from === 'end' ? state[0] + (backwards ? 0 : 1) : from;
    let remaining = options.maxCount ?? Number.POSITIVE_INFINITY;
    while (remaining > 0 && next >= 0 && next <= state[0]) {
      const page = this.readStreamPage(key, next, backwards, Math.min(PAGE_SIZE, remaining));
      if (page.length === 0) return;
      remaining -= page.length;
      next = (page[page.length - 1] as RecordedEvent).revision + (backwards ? -1 : 1);
      yield* page;
      this.assertOpen();
    }
  }

  /** Up to `limit` events of the stream `key` digests, from revision `from` (inclusive), walking its segments. */
  private readStreamPage(
    key: string,
    from: number,
    backwards: boolean,
    limit: number,
  ): RecordedEvent[] {
    const page: RecordedEvent[] = [];
    const step = backwards ? -1 : 1;
    let revision = from;
    for (const { key: segmentKey, value } of this.segmentsFrom(key, from, backwards)) {
      const [firstPosition, count] = value;
      const first = segmentKey[1];
      // Below a truncated stream's first event, a forward read starts at it.
      if (!backwards && revision < first) revision = first;
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
  private segmentsFrom(key: string, revision: number, backwards: boolean) {
    // The segment holding `revision` starts at or before it: the nearest key at or below.
    let start: [string, number] = [key, revision];
    for (const segmentKey of this.segments.getKeys({
      start: [key, revision],
      end: [key, -1],
      reverse: true,
      limit: 1,
    })) {
      start = segmentKey;
    }
    return this.segments.getRange(
      backwards
        ? { start: [key, revision], end: [key, -1], reverse: true }
        : { start, end: [key, LAST_KEY] },
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
      // Reads are synchronous: between pages, let the rest of the process
      // run (a full scan would otherwise hold the event loop for seconds).
      await nextTurn();
      this.assertOpen();
    }
  }

  async *subscribeAll(options: SubscribeAllOptions = {}): AsyncGenerator<RecordedEvent> {
    this.assertOpen();
    const { signal: abort, filter } = options;
    const from = options.from ?? 'start';
    let after = from === 'start' ? 0 : from === 'end' ? this.head() : Number(from.commit);
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
          await CommitSignal.until(committed, abort);
          this.root.resetReadTxn();
        } else {
          await nextTurn();
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
    for (const { key, value: record } of range) {
      last = key;
      if (matchesFilter(filter, record[0], record[3])) events.push(toRecordedEvent(record, key));
    }
    return { events, last };
  }

  private readRecord(position: number): StoredRecord {
    const record = this.log.get(position);
    if (!record) throw new Error(`event log is inconsistent: no event at position ${position}`);
    return record;
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
