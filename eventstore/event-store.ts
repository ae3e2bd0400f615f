/**
 * The EventStore port: the log of every fact Tandem knows. Adapters live beside
 * this file (`event-store.lmdb.ts`, `event-store.kurrentdb.ts`) and are held to
 * one behaviour by `event-store.contract.ts`.
 *
 * Semantics follow KurrentDB's, because that is the server the embedded store
 * must be interchangeable with:
 * - a stream is an ordered sequence of events; revisions count from 0;
 * - `$all` orders every event of every stream by a global position;
 * - `readAll` from a position is inclusive, `subscribeAll` from a position is
 *   exclusive (a subscriber resumes after the checkpoint it stored);
 * - deleting a stream tombstones it: it cannot be read, written or re-created;
 *   `scrub` then removes the deleted events' bytes from the store's files;
 * - truncating a stream (`truncateBefore`, KurrentDB's `$tb`) drops its oldest
 *   events and keeps the rest, their revisions, and the stream.
 */
import { ErrorCodes, TandemError } from '../schemas/errors.js';

export type JsonValue =
  | string
  | number
  | boolean
  | null
  | JsonValue[]
  | { [key: string]: JsonValue };
export type JsonObject = { [key: string]: JsonValue };

/** Where an event sits in `$all`. Embedded stores use one counter for both parts. */
export interface Position {
  readonly commit: bigint;
  readonly prepare: bigint;
}

/** An event to append. `id` is a UUID chosen by the writer; it makes retries idempotent. */
export interface EventData {
  readonly id: string;
  readonly type: string;
  readonly data: JsonObject;
  readonly metadata?: JsonObject;
}

/** An event as the store recorded it. */
export interface RecordedEvent {
  readonly id: string;
  readonly type: string;
  readonly stream: string;
  readonly revision: number;
  readonly position: Position;
  readonly data: JsonObject;
  readonly metadata: JsonObject;
  readonly recordedAt: Date;
}

/**
 * What the writer believes about the stream before its append:
 * `any` — no check; `no_stream` — it must not exist; `exists` — it must exist;
 * a number — its last event must have this revision.
 */
export type ExpectedState = 'any' | 'no_stream' | 'exists' | number;

export interface AppendOptions {
  readonly expected?: ExpectedState;
}

export interface AppendResult {
  /** Revision of the last event now in the stream: pass it as `expected` next time. */
  readonly nextExpectedRevision: number;
  /** Position of the last appended event in `$all`. */
  readonly position: Position;
}

export type Direction = 'forwards' | 'backwards';

export interface ReadStreamOptions {
  readonly direction?: Direction;
  /** First revision to read (inclusive); `start`/`end` by default, per direction. */
  readonly fromRevision?: number | 'start' | 'end';
  readonly maxCount?: number;
}

/** Server-side filters KurrentDB supports: one kind of prefix list at a time. */
export type EventFilter =
  | { readonly eventTypePrefixes: readonly string[] }
  | { readonly streamPrefixes: readonly string[] };

export interface ReadAllOptions {
  readonly direction?: Direction;
  /** First position to read (inclusive); `start`/`end` by default, per direction. */
  readonly from?: Position | 'start' | 'end';
  readonly maxCount?: number;
  readonly filter?: EventFilter;
}

export interface SubscribeAllOptions {
  /** Deliver events after this checkpoint (exclusive); `start` by default; `end` tails only new ones. */
  readonly from?: Position | 'start' | 'end';
  readonly filter?: EventFilter;
  /** Ends the subscription; breaking out of the loop does too. */
  readonly signal?: AbortSignal;
}

/** The write side of the log. */
export interface EventAppender {
  /** Appends atomically: all events or none. Re-appending the same ids to the same stream is a no-op that returns the original result. */
  append(
    stream: string,
    events: readonly EventData[],
    options?: AppendOptions,
  ): Promise<AppendResult>;
  /** Removes the stream's events and leaves a tombstone. Deleting a deleted stream is a no-op. */
  deleteStream(stream: string): Promise<void>;
  /**
   * Removes the stream's events before `revision` (exclusive), for retention:
   * they can no longer be read from the stream, whose reads now begin at the
   * first event kept (`start`, or any `fromRevision` below it). The stream
   * stays: later events keep their revisions, its last revision does not
   * change (expected-revision checks go on as before), and appends continue.
   * A revision past the end removes every event; the stream then reads as
   * empty and its next append gets the next revision. Returns how many events
   * it removed: 0 when already truncated there or further, and for a missing
   * or deleted stream (which it leaves as they are).
   *
   * The embedded store removes the events from `$all` at once, and `scrub`
   * then removes their bytes; a removed append's retry record goes with its
   * first event, so re-appending those ids appends them again. KurrentDB sets
   * the stream's `$tb`: the events stay in `$all` until its operators
   * scavenge (docs/eventstore.md).
   */
  truncateBefore(stream: string, revision: number): Promise<number>;
  /**
   * Overwrites the space deleted events held, so their bytes are gone from
   * the store's files, not only from every read: erasure calls it after
   * deleting a person's streams. Costs about one write of the store's free
   * space. The embedded store does it at once; a KurrentDB server does it at
   * its next scavenge, which its operators run (the adapter cannot start one).
   */
  scrub(): Promise<void>;
}

/** The read side of the log. */
export interface EventReader {
  /** Reads one stream. Throws StreamNotFoundError / StreamDeletedError on first iteration. */
  readStream(stream: string, options?: ReadStreamOptions): AsyncIterable<RecordedEvent>;
  /** Reads `$all` in position order. */
  readAll(options?: ReadAllOptions): AsyncIterable<RecordedEvent>;
  /** Catches up from a checkpoint, then tails live appends until aborted or broken out of. */
  subscribeAll(options?: SubscribeAllOptions): AsyncIterable<RecordedEvent>;
  /** Position of the newest event in `$all`, or undefined while the log is empty. */
  headPosition(): Promise<Position | undefined>;
}

export interface EventStore extends EventAppender, EventReader {
  /** Which adapter this is, for logs and `tandem` status output. */
  readonly kind: string;
  close(): Promise<void>;
}

// ---------------------------------------------------------------------------
// Positions

export const START_POSITION: Position = Object.freeze({ commit: 0n, prepare: 0n });

/** Orders two positions: negative, zero or positive. */
export function comparePositions(a: Position, b: Position): number {
  if (a.commit !== b.commit) return a.commit < b.commit ? -1 : 1;
  if (a.prepare !== b.prepare) return a.prepare < b.prepare ? -1 : 1;
  return 0;
}

/** A checkpoint string for a position, e.g. `"1042/1042"`; `parsePosition` reads it back. */
export function formatPosition(position: Position): string {
  return `${position.commit}/${position.prepare}`;
}

const positionPattern = /^(\d{1,20})\/(\d{1,20})$/;

/** Parses a checkpoint written by `formatPosition`. */
export function parsePosition(text: string): Position {
  const match = positionPattern.exec(text);
  if (!match?.[1] || !match[2]) {
    throw new TandemError(
      ErrorCodes.VALIDATION,
      `not a log position: "${text}" (expected COMMIT/PREPARE)`,
    );
  }
  return { commit: BigInt(match[1]), prepare: BigInt(match[2]) };
}

// ---------------------------------------------------------------------------
// Errors

export class WrongExpectedVersionError extends TandemError {
  constructor(
    readonly stream: string,
    readonly expected: ExpectedState,
    readonly actual: number | 'no_stream',
  ) {
    super(
      ErrorCodes.WRONG_EXPECTED_VERSION,
      `stream "${stream}": expected ${describeExpected(expected)}, but it ${actual === 'no_stream' ? 'does not exist' : `is at revision ${actual}`}`,
      { stream, expected, actual },
    );
  }
}

export class StreamDeletedError extends TandemError {
  constructor(readonly stream: string) {
    super(ErrorCodes.STREAM_DELETED, `stream "${stream}" was deleted`, { stream });
  }
}

export class StreamNotFoundError extends TandemError {
  constructor(readonly stream: string) {
    super(ErrorCodes.STREAM_NOT_FOUND, `stream "${stream}" does not exist`, { stream });
  }
}

export class IdempotencyConflictError extends TandemError {
  constructor(
    readonly stream: string,
    readonly eventIds: readonly string[],
  ) {
    super(
      ErrorCodes.IDEMPOTENCY_CONFLICT,
      `stream "${stream}": event ids already used by other events: ${eventIds.slice(0, 5).join(', ')}${eventIds.length > 5 ? ', …' : ''}`,
      { stream, eventIds },
    );
  }
}

export class EventTooLargeError extends TandemError {
  constructor(
    readonly stream: string,
    readonly bytes: number,
    readonly limit: number,
  ) {
    super(
      ErrorCodes.EVENT_TOO_LARGE,
      `stream "${stream}": append of ${bytes} bytes exceeds the limit of ${limit}`,
      {
        stream,
        bytes,
        limit,
      },
    );
  }
}

export class StoreClosedError extends TandemError {
  constructor(kind: string) {
    super(ErrorCodes.STORE_CLOSED, `the ${kind} event store is closed`);
  }
}

function describeExpected(expected: ExpectedState): string {
  if (typeof expected === 'number') return `revision ${expected}`;
  return expected === 'no_stream'
    ? 'no stream'
    : expected === 'exists'
      ? 'an existing stream'
      : 'any state';
}

// ---------------------------------------------------------------------------
// Input checks shared by adapters

const uuidPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** Event types are dotted lower-case names; `$` is reserved for the store's own events. */
const eventTypePattern = /^[A-Za-z][A-Za-z0-9_.-]{0,127}$/;
const maxStreamNameLength = 256;

/** Rejects what no adapter may store: bad stream names, ids, types, revisions. */
export function assertValidAppend(
  stream: string,
  events: readonly EventData[],
  expected: ExpectedState,
): void {
  assertValidStreamName(stream);
  if (typeof expected === 'number' && !(Number.isSafeInteger(expected) && expected >= 0)) {
    throw new TandemError(
      ErrorCodes.VALIDATION,
      `expected revision must be a non-negative integer, got ${expected}`,
    );
  }
  const seen = new Set<string>();
  events.forEach((event, index) => {
    if (!uuidPattern.test(event.id)) {
      throw new TandemError(
        ErrorCodes.VALIDATION,
        `events[${index}].id: not a UUID: "${event.id}"`,
        {
          path: ['events', index, 'id'],
        },
      );
    }
    const id = event.id.toLowerCase();
    if (seen.has(id)) {
      throw new TandemError(
        ErrorCodes.VALIDATION,
        `events[${index}].id: "${event.id}" appears twice in one append`,
        {
          path: ['events', index, 'id'],
        },
      );
    }
    seen.add(id);
    if (!eventTypePattern.test(event.type)) {
      throw new TandemError(
        ErrorCodes.VALIDATION,
        `events[${index}].type: "${event.type}" is not an event type (letters, digits, . _ -; starting with a letter)`,
        { path: ['events', index, 'type'] },
      );
    }
  });
}

/** Rejects a truncation no adapter can take: a bad stream name, a revision that is not a non-negative integer. */
export function assertValidTruncate(stream: string, revision: number): void {
  assertValidStreamName(stream);
  if (!(Number.isSafeInteger(revision) && revision >= 0)) {
    throw new TandemError(
      ErrorCodes.VALIDATION,
      `truncate revision must be a non-negative integer, got ${revision}`,
      { path: ['revision'] },
    );
  }
}

/** Stream names are non-empty, at most 256 characters, and never start with `$` (reserved). */
export function assertValidStreamName(stream: string): void {
  if (
    typeof stream !== 'string' ||
    stream.length === 0 ||
    stream.length > maxStreamNameLength ||
    stream.startsWith('$')
  ) {
    throw new TandemError(
      ErrorCodes.VALIDATION,
      `stream name must be 1..${maxStreamNameLength} characters and not start with "$": "${String(stream).slice(0, 40)}"`,
      { path: ['stream'] },
    );
  }
}

/** True when the event passes the filter. Adapters use it where the backend cannot filter. */
export function matchesFilter(
  filter: EventFilter | undefined,
  stream: string,
  type: string,
): boolean {
  if (!filter) return true;
  if ('eventTypePrefixes' in filter)
    return filter.eventTypePrefixes.some((prefix) => type.startsWith(prefix));
  return filter.streamPrefixes.some((prefix) => stream.startsWith(prefix));
}
