/**
 * How the embedded store removes events: a whole stream (`deleteStream`) or
 * its oldest events (`truncateBefore`), so that no byte of them stays in the
 * files once the store has scrubbed (lmdb-scrub.ts says why each step is
 * needed). Both run inside one child transaction of the caller, in this order:
 *
 *   1. `removeFromIndexes`: the stream's `stream-segments` entries before a
 *      revision, and the `stream-appends` entries of the appends they start,
 *      each value zeroed before it goes; a segment the revision cuts keeps
 *      its later part under a new key;
 *   2. whatever else the caller writes (a tombstone), before the log, so that
 *      no page it copies reuses a page the log removal freed;
 *   3. `removeFromLog`: the log entries, zeroed, last in the transaction; it
 *      returns the runs of removed positions, around which the caller
 *      re-writes the log in the next transaction (`touchAround`).
 */
import type { Database } from 'lmdb';
import { removeZeroed } from './lmdb-scrub.js';

/**
 * One append's events of a stream: contiguous revisions from the key's, at
 * contiguous positions. `appendId` is the first event id the append is
 * registered under in `stream-appends` (its retry record), or null once
 * `truncateBefore` removed that event and the record with it.
 */
export type Segment = [firstPosition: number, count: number, appendId: string | null];

/** The stream index databases, keyed by `nameDigest(stream)`. */
export interface StreamIndexes {
  readonly segments: Database<Segment, [string, number]>;
  readonly appends: Database<[string, number], string>;
}

/** A range of log positions: `count` events from `first`. */
export type LogRange = readonly [first: number, count: number];

/** A maximal run of removed positions, with no live event inside it. */
export interface RemovedRun {
  first: number;
  last: number;
}

/**
 * Removes the index entries of the events of stream `key` before revision
 * `before` (exclusive), zeroed; a segment that `before` cuts is re-keyed at
 * `before` with its later events and no retry record. Returns the log ranges
 * those events occupy, for `removeFromLog`. Call it in a write transaction.
 */
export function removeFromIndexes(indexes: StreamIndexes, key: string, before: number): LogRange[] {
  const ranges: LogRange[] = [];
  const cut = [...indexes.segments.getRange({ start: [key, 0], end: [key, before] })];
  for (const { key: segmentKey, value } of cut) {
    const [firstPosition, count, appendId] = value;
    const removed = Math.min(count, before - segmentKey[1]);
    if (appendId !== null) removeZeroed(indexes.appends, appendId);
    removeZeroed(indexes.segments, segmentKey);
    if (removed < count) {
      indexes.segments.put([key, before], [firstPosition + removed, count - removed, null]);
    }
    ranges.push([firstPosition, removed]);
  }
  return ranges;
}

/**
 * Removes the log entries of `ranges`, each zeroed first; call it last in the
 * transaction. Returns the maximal runs of removed positions: ranges sorted,
 * and joined where no live event lies between them, so the touch walks from
 * each run once (a stream of single-event appends gives thousands of ranges).
 */
export function removeFromLog<V>(log: Database<V, number>, ranges: LogRange[]): RemovedRun[] {
  for (const [first, count] of ranges) {
    for (let i = 0; i < count; i++) removeZeroed(log, first + i);
  }
  const runs: RemovedRun[] = [];
  for (const [first, count] of [...ranges].sort((a, b) => a[0] - b[0])) {
    const previous = runs[runs.length - 1];
    const between = previous && [...log.getKeys({ start: previous.last, end: first, limit: 1 })];
    if (previous && between?.length === 0) previous.last = first + count - 1;
    else runs.push({ first, last: first + count - 1 });
  }
  return runs;
}

/** How many events the ranges hold. */
export function eventsIn(ranges: readonly LogRange[]): number {
  return ranges.reduce((sum, [, count]) => sum + count, 0);
}
