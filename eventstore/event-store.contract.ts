/**
 * The conformance suite every EventStore adapter runs. Adapter differences are
 * options, never copies of the suite. Each test writes its own streams (and
 * event types) under a fresh prefix, so tests against a shared server do not
 * see each other's data.
 */
import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCodes } from '../schemas/errors.js';
import {
  comparePositions,
  type EventData,
  type EventStore,
  EventTooLargeError,
  IdempotencyConflictError,
  type Position,
  type RecordedEvent,
  StreamDeletedError,
  StreamNotFoundError,
  WrongExpectedVersionError,
} from './event-store.js';
import { type EventStoreSpec, openEventStore } from './open-event-store.js';
import { appendUntilKilled, collect, makeEvents, withTimeout } from './testing/helpers.js';

export interface EventStoreContractOptions {
  /** When set, the whole suite is reported skipped with this reason. */
  readonly skipReason?: string | undefined;
  /** true when events that deleteStream or truncateBefore removed vanish from readAll at once (LMDB); false when only a scavenge removes them (KurrentDB). */
  readonly removalsLeaveAll: boolean;
  /** The size of the large event every store must take. */
  readonly largeEventBytes: number;
}

export interface ContractTarget {
  readonly spec: EventStoreSpec;
  cleanup(): Promise<void>;
}

/** Registers the conformance suite for one adapter. */
export function describeEventStoreContract(
  name: string,
  target: () => Promise<ContractTarget>,
  options: EventStoreContractOptions,
): void {
  if (options.skipReason) {
    console.warn(`[event store contract] ${name}: skipped — ${options.skipReason}`);
    describe.skip(`${name} event store contract (skipped: ${options.skipReason})`, () => {
      it('runs when its store is available', () => {});
    });
    return;
  }

  describe(`${name} event store contract`, () => {
    let current: ContractTarget;
    let store: EventStore;
    let prefix: string;

    beforeAll(async () => {
      current = await target();
      store = await openEventStore(current.spec);
    });
    afterAll(async () => {
      await store?.close();
      await current?.cleanup();
    });

    /** A stream name unique to this test. */
    const streamName = (label = 's') => {
      prefix ??= `c${randomUUID().slice(0, 8)}`;
      return `${prefix}-${label}-${randomUUID().slice(0, 8)}`;
    };

    describe('append and readStream', () => {
      it('stores events in order with revisions from 0 and increasing positions', async () => {
        const stream = streamName();
        const events = makeEvents(3, 'order.placed', { metadata: { source: 'contract' } });
        const result = await store.append(stream, events, { expected: 'no_stream' });
        expect(result.nextExpectedRevision).toBe(2);

        const read = await collect(store.readStream(stream));
        expect(read.map((event) => [event.id, event.type, event.revision, event.stream])).toEqual(
          events.map((event, i) => [event.id, event.type, i, stream]),
        );
        expect(read.map((event) => event.data)).toEqual(events.map((event) => event.data));
        expect(read[0]?.metadata).toEqual({ source: 'contract' });
        expect(read[0]?.recordedAt).toBeInstanceOf(Date);
        expectAscending(read.map((event) => event.position));
        expect(comparePositions(read[2]?.position as Position, result.position)).toBe(0);
      });

      it('continues a stream from the revision the last append returned', async () => {
        const stream = streamName();
        const first = await store.append(stream, makeEvents(2), { expected: 'no_stream' });
        const second = await store.append(stream, makeEvents(3), {
          expected: first.nextExpectedRevision,
        });
        expect(second.nextExpectedRevision).toBe(4);
        expect(comparePositions(second.position, first.position)).toBeGreaterThan(0);
        expect((await collect(store.readStream(stream))).map((event) => event.revision)).toEqual([
          0, 1, 2, 3, 4,
        ]);
      });

      it('reads backwards, from a revision, and at most maxCount events', async () => {
        const stream = streamName();
        await store.append(stream, makeEvents(10));
        const revisions = async (options: Parameters<EventStore['readStream']>[1]) =>
          (await collect(store.readStream(stream, options))).map((event) => event.revision);
        expect(await revisions({ direction: 'backwards' })).toEqual([9, 8, 7, 6, 5, 4, 3, 2, 1, 0]);
        expect(await revisions({ fromRevision: 7 })).toEqual([7, 8, 9]);
        expect(await revisions({ direction: 'backwards', fromRevision: 2 })).toEqual([2, 1, 0]);
        expect(await revisions({ maxCount: 4 })).toEqual([0, 1, 2, 3]);
        expect(await revisions({ direction: 'backwards', maxCount: 1 })).toEqual([9]);
      });

      it('reads a long stream across pages', async () => {
        const stream = streamName();
        const events = makeEvents(1_200);
        await store.append(stream, events);
        const read = await collect(store.readStream(stream));
        expect(read.map((event) => event.id)).toEqual(events.map((event) => event.id));
      });

      it('reads any window of a stream built by many appends like an array would', async () => {
        // Appends of varied sizes give a stream of many segments; each read
        // must equal the same window of a plain array of the appended ids.
        await fc.assert(
          fc.asyncProperty(
            fc.array(fc.integer({ min: 1, max: 7 }), { minLength: 1, maxLength: 8 }),
            fc.boolean(),
            fc.nat(),
            fc.integer({ min: 1, max: 20 }),
            async (sizes, backwards, fromSeed, maxCount) => {
              const stream = streamName('window');
              const ids: string[] = [];
              for (const size of sizes) {
                const events = makeEvents(size);
                await store.append(stream, events);
                ids.push(...events.map((event) => event.id));
              }
              const fromRevision = fromSeed % ids.length;
              const read = await collect(
                store.readStream(stream, {
                  direction: backwards ? 'backwards' : 'forwards',
                  fromRevision,
                  maxCount,
                }),
              );
              const expected = backwards
                ? ids.slice(Math.max(0, fromRevision - maxCount + 1), fromRevision + 1).reverse()
                : ids.slice(fromRevision, fromRevision + maxCount);
              expect(read.map((event) => event.id)).toEqual(expected);
            },
          ),
          { numRuns: 25 },
        );
      });

      it('fails to read a stream that was never written', async () => {
        await expect(collect(store.readStream(streamName()))).rejects.toBeInstanceOf(
          StreamNotFoundError,
        );
      });

      it('rejects malformed input and writes nothing', async () => {
        const stream = streamName();
        const cases: [string, EventData[]][] = [
          [stream, [{ id: 'not-a-uuid', type: 'x', data: {} }]],
          [stream, [{ id: randomUUID(), type: '$system', data: {} }]],
          ['$all', makeEvents(1)],
          ['', makeEvents(1)],
        ];
        for (const [target, events] of cases) {
          await expect(store.append(target, events)).rejects.toMatchObject({
            code: ErrorCodes.VALIDATION,
          });
        }
        const id = randomUUID();
        await expect(
          store.append(stream, [
            { id, type: 'a', data: {} },
            { id, type: 'a', data: {} },
          ]),
        ).rejects.toMatchObject({ code: ErrorCodes.VALIDATION });
        await expect(collect(store.readStream(stream))).rejects.toBeInstanceOf(StreamNotFoundError);
      });
    });

    describe('expected state', () => {
      it('refuses no_stream when the stream exists, naming its revision', async () => {
        const stream = streamName();
        await store.append(stream, makeEvents(2));
        const error = await store
          .append(stream, makeEvents(1), { expected: 'no_stream' })
          .catch((e: unknown) => e);
        expect(error).toBeInstanceOf(WrongExpectedVersionError);
        expect(error).toMatchObject({ code: ErrorCodes.WRONG_EXPECTED_VERSION, actual: 1 });
      });

      it('refuses exists when the stream does not', async () => {
        const error = await store
          .append(streamName(), makeEvents(1), { expected: 'exists' })
          .catch((e: unknown) => e);
        expect(error).toBeInstanceOf(WrongExpectedVersionError);
        expect(error).toMatchObject({ actual: 'no_stream' });
      });

      it('refuses a stale revision and writes nothing', async () => {
        const stream = streamName();
        await store.append(stream, makeEvents(3));
        await expect(store.append(stream, makeEvents(1), { expected: 1 })).rejects.toBeInstanceOf(
          WrongExpectedVersionError,
        );
        await expect(store.append(stream, makeEvents(1), { expected: 5 })).rejects.toMatchObject({
          actual: 2,
        });
        expect(await collect(store.readStream(stream))).toHaveLength(3);
      });

      it('accepts exists and any on an existing stream', async () => {
        const stream = streamName();
        await store.append(stream, makeEvents(1), { expected: 'any' });
        await store.append(stream, makeEvents(1), { expected: 'exists' });
        const last = await store.append(stream, makeEvents(1), { expected: 'any' });
        expect(last.nextExpectedRevision).toBe(2);
      });

      it('lets exactly one of two concurrent appenders at the same revision win', async () => {
        const stream = streamName();
        const start = await store.append(stream, makeEvents(1));
        const outcomes = await Promise.allSettled([
          store.append(stream, makeEvents(2, 'writer.a'), { expected: start.nextExpectedRevision }),
          store.append(stream, makeEvents(2, 'writer.b'), { expected: start.nextExpectedRevision }),
        ]);
        expect(outcomes.filter((outcome) => outcome.status === 'fulfilled')).toHaveLength(1);
        const rejected = outcomes.find((outcome) => outcome.status === 'rejected');
        expect(rejected?.reason).toBeInstanceOf(WrongExpectedVersionError);
        const types = new Set(
          (await collect(store.readStream(stream, { fromRevision: 1 }))).map((e) => e.type),
        );
        expect(types.size).toBe(1);
      });

      it('gives every concurrent append to different streams its own positions', async () => {
        const streams = Array.from({ length: 50 }, () => streamName('fan'));
        const results = await Promise.all(
          streams.map((stream) => store.append(stream, makeEvents(3))),
        );
        const positions = results.map(
          (result) => `${result.position.commit}/${result.position.prepare}`,
        );
        expect(new Set(positions).size).toBe(streams.length);
        for (const stream of streams)
          expect(await collect(store.readStream(stream))).toHaveLength(3);
      });
    });

    describe('idempotency', () => {
      for (const expected of ['any', 'no_stream', 'revision'] as const) {
        it(`stores a retried append once (expected ${expected}) and returns the first result`, async () => {
          const stream = streamName();
          const state = expected === 'revision' ? 0 : expected;
          if (expected === 'revision') await store.append(stream, makeEvents(1));
          const events = makeEvents(3);
          const first = await store.append(stream, events, { expected: state });
          const retry = await store.append(stream, events, { expected: state });
          expect(retry.nextExpectedRevision).toBe(first.nextExpectedRevision);
          expect(comparePositions(retry.position, first.position)).toBe(0);
          const ids = (await collect(store.readStream(stream))).map((event) => event.id);
          expect(ids.filter((id) => events.some((event) => event.id === id))).toHaveLength(3);
          expect(ids).toHaveLength(expected === 'revision' ? 4 : 3);
        });
      }
    });

    describe('readAll', () => {
      it('returns events of every stream in position order, inclusive of its start', async () => {
        const a = streamName('all');
        const b = streamName('all');
        const first = await store.append(a, makeEvents(2));
        await store.append(b, makeEvents(2));
        await store.append(a, makeEvents(1));
        const from = (await collect(store.readStream(a, { maxCount: 1 })))[0]?.position as Position;
        const read = (
          await collect(store.readAll({ from, filter: { streamPrefixes: [a, b] } }))
        ).filter((event) => [a, b].includes(event.stream));
        expect(read.map((event) => `${event.stream === a ? 'a' : 'b'}${event.revision}`)).toEqual([
          'a0',
          'a1',
          'b0',
          'b1',
          'a2',
        ]);
        expectAscending(read.map((event) => event.position));
        expect(comparePositions(read[1]?.position as Position, first.position)).toBe(0);
      });

      it('reads backwards and honours maxCount', async () => {
        const stream = streamName('back');
        const result = await store.append(stream, makeEvents(5));
        const read = await collect(
          store.readAll({
            direction: 'backwards',
            from: result.position,
            maxCount: 3,
            filter: { streamPrefixes: [stream] },
          }),
        );
        expect(read.map((event) => event.revision)).toEqual([4, 3, 2]);
      });

      it('filters by event-type prefix and by stream prefix', async () => {
        const family = streamName('filter');
        const typePrefix = `t${randomUUID().slice(0, 8)}`;
        const start = await store.append(`${family}-one`, makeEvents(2, `${typePrefix}.viewed`));
        await store.append(`${family}-two`, makeEvents(3, `${typePrefix}.bought`));
        await store.append(streamName('other'), makeEvents(2, `${typePrefix}.viewed`));
        const from = (await collect(store.readStream(`${family}-one`)))[0]?.position as Position;

        const bought = await collect(
          store.readAll({ from, filter: { eventTypePrefixes: [`${typePrefix}.bought`] } }),
        );
        expect(bought.map((event) => event.stream)).toEqual(Array(3).fill(`${family}-two`));

        const family2 = await collect(
          store.readAll({ from, filter: { streamPrefixes: [`${family}-`] } }),
        );
        expect(family2).toHaveLength(5);
        expect(comparePositions(family2[0]?.position as Position, from)).toBe(0);
        expect(start.nextExpectedRevision).toBe(1);
      });

      it('reports the head of the log', async () => {
        const result = await store.append(streamName('head'), makeEvents(2));
        const head = await store.headPosition();
        expect(head).toBeDefined();
        expect(comparePositions(head as Position, result.position)).toBeGreaterThanOrEqual(0);
      });
    });

    describe('subscribeAll', () => {
      it('catches up from a checkpoint, then delivers live appends', async () => {
        const stream = streamName('sub');
        await store.append(stream, makeEvents(3));
        const [, checkpoint] = await collect(store.readStream(stream));
        const controller = new AbortController();
        const received: RecordedEvent[] = [];
        const consumer = (async () => {
          for await (const event of store.subscribeAll({
            from: (checkpoint as RecordedEvent).position,
            filter: { streamPrefixes: [stream] },
            signal: controller.signal,
          })) {
            received.push(event);
            if (received.length === 1) void store.append(stream, makeEvents(2), { expected: 2 });
            if (received.length === 3) controller.abort();
          }
        })();
        await withTimeout(consumer, 10_000, 'subscription did not deliver live events');
        expect(received.map((event) => event.revision)).toEqual([2, 3, 4]);
      });

      it('from end delivers only new events and stops when the consumer breaks', async () => {
        const stream = streamName('tail');
        await store.append(stream, makeEvents(2));
        const iterator = store
          .subscribeAll({ from: 'end', filter: { eventTypePrefixes: ['tail.'] } })
          [Symbol.asyncIterator]();
        const next = iterator.next();
        const appended = makeEvents(1, 'tail.live');
        await new Promise((resolve) => setTimeout(resolve, 50));
        await store.append(stream, appended);
        const first = await withTimeout(next, 10_000, 'tail did not wake on append');
        expect(first.value?.id).toBe(appended[0]?.id);
        await iterator.return?.();
      });

      it('ends when aborted while idle', async () => {
        const controller = new AbortController();
        const consumer = (async () => {
          for await (const _ of store.subscribeAll({ from: 'end', signal: controller.signal })) {
            // nothing is appended under this filter-less tail in the window below
          }
        })();
        setTimeout(() => controller.abort(), 50);
        await withTimeout(consumer, 5_000, 'subscription ignored its abort signal');
      });
    });

    describe('deleteStream', () => {
      it('tombstones: reads and appends fail, even with no_stream, and deleting again is harmless', async () => {
        const stream = streamName('del');
        await store.append(stream, makeEvents(3));
        await store.deleteStream(stream);
        await expect(collect(store.readStream(stream))).rejects.toBeInstanceOf(StreamDeletedError);
        await expect(store.append(stream, makeEvents(1))).rejects.toBeInstanceOf(
          StreamDeletedError,
        );
        await expect(
          store.append(stream, makeEvents(1), { expected: 'no_stream' }),
        ).rejects.toBeInstanceOf(StreamDeletedError);
        await store.deleteStream(stream);
      });

      it('leaves other streams alone', async () => {
        const doomed = streamName('del');
        const kept = streamName('keep');
        await store.append(doomed, makeEvents(2));
        await store.append(kept, makeEvents(2));
        await store.deleteStream(doomed);
        expect(await collect(store.readStream(kept))).toHaveLength(2);
      });

      it('scrubs without touching live streams or tombstones', async () => {
        const doomed = streamName('scrub');
        const kept = streamName('keep');
        const events = makeEvents(3);
        await store.append(doomed, makeEvents(5));
        await store.append(kept, events);
        await store.deleteStream(doomed);
        await store.scrub();
        await store.scrub();
        expect((await collect(store.readStream(kept))).map((event) => event.id)).toEqual(
          events.map((event) => event.id),
        );
        await expect(collect(store.readStream(doomed))).rejects.toBeInstanceOf(StreamDeletedError);
        await expect(
          store.append(doomed, makeEvents(1), { expected: 'no_stream' }),
        ).rejects.toBeInstanceOf(StreamDeletedError);
      });

      it(`${options.removalsLeaveAll ? 'removes' : 'keeps until a scavenge'} the events in readAll`, async () => {
        const stream = streamName('del');
        const result = await store.append(stream, makeEvents(4));
        const from = (await collect(store.readStream(stream)))[0]?.position as Position;
        await store.deleteStream(stream);
        const left = await collect(store.readAll({ from, filter: { streamPrefixes: [stream] } }));
        expect(left).toHaveLength(options.removalsLeaveAll ? 0 : 4);
        expect(result.nextExpectedRevision).toBe(3);
      });
    });

    describe('truncateBefore', () => {
      /** A stream of `sizes.length` appends; returns every event id in revision order. */
      const appendAll = async (stream: string, sizes: readonly number[]) => {
        const ids: string[] = [];
        for (const size of sizes) {
          const events = makeEvents(size);
          await store.append(stream, events);
          ids.push(...events.map((event) => event.id));
        }
        return ids;
      };
      const revisions = async (stream: string, options?: Parameters<EventStore['readStream']>[1]) =>
        (await collect(store.readStream(stream, options))).map((event) => event.revision);

      it('removes the events before a revision: every read of the stream starts at it', async () => {
        const stream = streamName('trunc');
        // Appends of 3, 4 and 3: revision 5 cuts the second append.
        const ids = await appendAll(stream, [3, 4, 3]);
        expect(await store.truncateBefore(stream, 5)).toBe(5);
        const read = await collect(store.readStream(stream));
        expect(read.map((event) => [event.revision, event.id])).toEqual(
          ids.slice(5).map((id, i) => [5 + i, id]),
        );
        expect(await revisions(stream, { direction: 'backwards' })).toEqual([9, 8, 7, 6, 5]);
        expect(await revisions(stream, { fromRevision: 2 })).toEqual([5, 6, 7, 8, 9]);
        expect(await revisions(stream, { fromRevision: 2, maxCount: 2 })).toEqual([5, 6]);
        expect(await revisions(stream, { direction: 'backwards', fromRevision: 7 })).toEqual([
          7, 6, 5,
        ]);
        expect(await revisions(stream, { direction: 'backwards', fromRevision: 3 })).toEqual([]);
      });

      it('keeps the last revision: appends continue and expected-revision checks hold', async () => {
        const stream = streamName('trunc');
        await appendAll(stream, [4, 2]);
        await store.truncateBefore(stream, 3);
        await expect(store.append(stream, makeEvents(1), { expected: 4 })).rejects.toMatchObject({
          code: ErrorCodes.WRONG_EXPECTED_VERSION,
          actual: 5,
        });
        await expect(
          store.append(stream, makeEvents(1), { expected: 'no_stream' }),
        ).rejects.toBeInstanceOf(WrongExpectedVersionError);
        const next = await store.append(stream, makeEvents(2), { expected: 5 });
        expect(next.nextExpectedRevision).toBe(7);
        await store.append(stream, makeEvents(1), { expected: 'exists' });
        expect(await revisions(stream)).toEqual([3, 4, 5, 6, 7, 8]);
      });

      it('removes nothing at or below where it truncated before, and returns 0', async () => {
        const stream = streamName('trunc');
        await appendAll(stream, [6]);
        expect(await store.truncateBefore(stream, 4)).toBe(4);
        expect(await store.truncateBefore(stream, 4)).toBe(0);
        expect(await store.truncateBefore(stream, 2)).toBe(0);
        expect(await store.truncateBefore(stream, 0)).toBe(0);
        expect(await revisions(stream)).toEqual([4, 5]);
        expect(await store.truncateBefore(stream, 5)).toBe(1);
        expect(await revisions(stream)).toEqual([5]);
      });

      it('leaves a missing stream missing and a deleted one deleted, returning 0', async () => {
        const missing = streamName('trunc');
        expect(await store.truncateBefore(missing, 3)).toBe(0);
        await expect(collect(store.readStream(missing))).rejects.toBeInstanceOf(
          StreamNotFoundError,
        );
        // Nothing was recorded for it: its first events are revisions 0 onwards, all readable.
        await store.append(missing, makeEvents(2), { expected: 'no_stream' });
        expect(await revisions(missing)).toEqual([0, 1]);

        const deleted = streamName('trunc');
        await appendAll(deleted, [3]);
        await store.deleteStream(deleted);
        expect(await store.truncateBefore(deleted, 2)).toBe(0);
        await expect(collect(store.readStream(deleted))).rejects.toBeInstanceOf(StreamDeletedError);
      });

      it('past the end removes every event but keeps the stream: its next append gets the next revision', async () => {
        const stream = streamName('trunc');
        await appendAll(stream, [2, 2]);
        expect(await store.truncateBefore(stream, 1_000)).toBe(4);
        expect(await collect(store.readStream(stream))).toEqual([]);
        expect(await collect(store.readStream(stream, { direction: 'backwards' }))).toEqual([]);
        expect(await store.truncateBefore(stream, 2_000)).toBe(0);
        await expect(
          store.append(stream, makeEvents(1), { expected: 'no_stream' }),
        ).rejects.toBeInstanceOf(WrongExpectedVersionError);
        const next = await store.append(stream, makeEvents(1), { expected: 3 });
        expect(next.nextExpectedRevision).toBe(4);
        expect(await revisions(stream)).toEqual([4]);
      });

      it('lets a truncated stream be deleted', async () => {
        const stream = streamName('trunc');
        await appendAll(stream, [3, 3]);
        await store.truncateBefore(stream, 4);
        await store.deleteStream(stream);
        await expect(collect(store.readStream(stream))).rejects.toBeInstanceOf(StreamDeletedError);
      });

      it('refuses a revision that is not a non-negative integer, and a bad stream name', async () => {
        const stream = streamName('trunc');
        await appendAll(stream, [2]);
        for (const revision of [-1, 1.5, Number.NaN]) {
          await expect(store.truncateBefore(stream, revision)).rejects.toMatchObject({
            code: ErrorCodes.VALIDATION,
          });
        }
        await expect(store.truncateBefore('$all', 1)).rejects.toMatchObject({
          code: ErrorCodes.VALIDATION,
        });
        expect(await revisions(stream)).toEqual([0, 1]);
      });

      it(`${options.removalsLeaveAll ? 'removes' : 'keeps until a scavenge'} the truncated events in readAll`, async () => {
        const stream = streamName('trunc');
        await appendAll(stream, [3, 3]);
        const from = (await collect(store.readStream(stream)))[0]?.position as Position;
        await store.truncateBefore(stream, 4);
        const left = await collect(store.readAll({ from, filter: { streamPrefixes: [stream] } }));
        expect(left.map((event) => event.revision)).toEqual(
          options.removalsLeaveAll ? [4, 5] : [0, 1, 2, 3, 4, 5],
        );
      });

      it('reads any window of a stream truncated anywhere like an array would', async () => {
        await fc.assert(
          fc.asyncProperty(
            fc.array(fc.integer({ min: 1, max: 7 }), { minLength: 1, maxLength: 6 }),
            fc.nat(),
            fc.boolean(),
            fc.nat(),
            fc.integer({ min: 1, max: 20 }),
            async (sizes, cutSeed, backwards, fromSeed, maxCount) => {
              const stream = streamName('twindow');
              const ids = await appendAll(stream, sizes);
              const cut = cutSeed % (ids.length + 2);
              expect(await store.truncateBefore(stream, cut)).toBe(Math.min(cut, ids.length));
              const fromRevision = fromSeed % ids.length;
              const read = await collect(
                store.readStream(stream, {
                  direction: backwards ? 'backwards' : 'forwards',
                  fromRevision,
                  maxCount,
                }),
              );
              // The array after the cut, as [revision, id]; reads index it by revision.
              const kept = ids.map((id, revision) => [revision, id]).slice(cut);
              const expected = backwards
                ? kept
                    .filter(([revision]) => (revision as number) <= fromRevision)
                    .reverse()
                    .slice(0, maxCount)
                : kept
                    .filter(([revision]) => (revision as number) >= fromRevision)
                    .slice(0, maxCount);
              expect(read.map((event) => [event.revision, event.id])).toEqual(expected);
            },
          ),
          { numRuns: 25 },
        );
      });
    });

    describe('sizes', () => {
      it('stores and returns a large event intact', async () => {
        const stream = streamName('large');
        const blob = 'x'.repeat(options.largeEventBytes);
        const [event] = makeEvents(1, 'large.blob');
        await store.append(stream, [{ ...(event as EventData), data: { blob } }]);
        const [read] = await collect(store.readStream(stream));
        expect(read?.data.blob).toHaveLength(options.largeEventBytes);
      });

      it('refuses an append over the size limit and writes nothing', async () => {
        const stream = streamName('huge');
        const limit = current.spec.maxAppendBytes ?? 1_048_576;
        const error = await store
          .append(stream, [
            { id: randomUUID(), type: 'huge', data: { blob: 'y'.repeat(limit + 1024) } },
          ])
          .catch((e: unknown) => e);
        expect(error).toBeInstanceOf(EventTooLargeError);
        await expect(collect(store.readStream(stream))).rejects.toBeInstanceOf(StreamNotFoundError);
      });
    });

    describe('durability', () => {
      it('keeps every acknowledged append when the writer is killed with SIGKILL', async () => {
        const stream = streamName('crash');
        const acked = await appendUntilKilled(current.spec, stream, 25);
        await store.close();
        store = await openEventStore(current.spec);
        const stored = await collect(store.readStream(stream));
        const storedIds = new Set(stored.map((event) => event.id));
        for (const id of acked) expect(storedIds.has(id)).toBe(true);
        // Batches are atomic: what is stored is whole batches of 10.
        expect(stored.length % 10).toBe(0);
        expect(stored.map((event) => event.revision)).toEqual(stored.map((_, i) => i));
      }, 60_000);
    });

    it('refuses an idempotency conflict (some ids reused) without writing', async () => {
      const stream = streamName('conflict');
      const events = makeEvents(2);
      await store.append(stream, events);
      const mixed = [events[0] as EventData, ...makeEvents(1)];
      const error = await store.append(stream, mixed).catch((e: unknown) => e);
      // KurrentDB answers a partial overlap with a version conflict; LMDB names it.
      expect(
        [IdempotencyConflictError, WrongExpectedVersionError].some((type) => error instanceof type),
      ).toBe(true);
      expect(await collect(store.readStream(stream))).toHaveLength(2);
    });
  });
}

function expectAscending(positions: readonly Position[]): void {
  for (let i = 1; i < positions.length; i++) {
    expect(
      comparePositions(positions[i] as Position, positions[i - 1] as Position),
    ).toBeGreaterThan(0);
  }
}
