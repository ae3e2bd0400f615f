import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ErrorCodes } from '../schemas/errors.js';
import {
  assertValidAppend,
  comparePositions,
  formatPosition,
  matchesFilter,
  parsePosition,
  WrongExpectedVersionError,
} from './event-store.js';
import { RecordCodec } from './event-store.lmdb.records.js';

const position = fc.record({
  commit: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
  prepare: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
});

describe('positions', () => {
  it('survive a round trip through their checkpoint string', () => {
    fc.assert(
      fc.property(position, (p) => comparePositions(parsePosition(formatPosition(p)), p) === 0),
    );
  });

  it('order by commit, then prepare', () => {
    fc.assert(
      fc.property(position, position, (a, b) => {
        const order = comparePositions(a, b);
        const expected =
          a.commit === b.commit
            ? Math.sign(Number(a.prepare - b.prepare))
            : a.commit < b.commit
              ? -1
              : 1;
        return Math.sign(order) === expected && Math.sign(comparePositions(b, a)) === -expected;
      }),
    );
  });

  it('refuse checkpoints that are not COMMIT/PREPARE', () => {
    for (const text of ['', '12', '1/2/3', '-1/2', 'a/b', '1 / 2']) {
      expect(() => parsePosition(text)).toThrow(/not a log position/);
    }
  });
});

describe(assertValidAppend.name, () => {
  const good = () => ({ id: randomUUID(), type: 'pos.receipt', data: {} });

  it('accepts well-formed appends, including an empty one', () => {
    expect(() => assertValidAppend('person-1', [good(), good()], 'any')).not.toThrow();
    expect(() => assertValidAppend('person-1', [], 3)).not.toThrow();
  });

  it('names the index and field of a bad event', () => {
    expect(() => assertValidAppend('s', [good(), { ...good(), id: '123' }], 'any')).toThrow(
      /events\[1\]\.id/,
    );
    expect(() => assertValidAppend('s', [{ ...good(), type: '$deleted' }], 'any')).toThrow(
      /events\[0\]\.type/,
    );
  });

  it('refuses reserved and oversized stream names and bad revisions', () => {
    for (const stream of ['', '$all', 'x'.repeat(257)]) {
      expect(() => assertValidAppend(stream, [good()], 'any')).toThrow(
        expect.objectContaining({ code: ErrorCodes.VALIDATION }),
      );
    }
    for (const revision of [-1, 1.5, Number.NaN]) {
      expect(() => assertValidAppend('s', [good()], revision)).toThrow(/expected revision/);
    }
  });
});

describe(matchesFilter.name, () => {
  it('matches by event-type prefix or by stream prefix', () => {
    expect(matchesFilter({ eventTypePrefixes: ['pos.'] }, 'anon-1', 'pos.receipt')).toBe(true);
    expect(matchesFilter({ eventTypePrefixes: ['pos.'] }, 'pos-1', 'track')).toBe(false);
    expect(matchesFilter({ streamPrefixes: ['member-', 'email-'] }, 'email-ab', 'identify')).toBe(
      true,
    );
    expect(matchesFilter(undefined, 'any', 'thing')).toBe(true);
  });
});

describe(WrongExpectedVersionError.name, () => {
  it('says what was expected and what was found', () => {
    expect(new WrongExpectedVersionError('orders-1', 'no_stream', 4).message).toBe(
      'stream "orders-1": expected no stream, but it is at revision 4',
    );
    expect(new WrongExpectedVersionError('orders-1', 2, 'no_stream').message).toBe(
      'stream "orders-1": expected revision 2, but it does not exist',
    );
  });
});

describe(RecordCodec.name, () => {
  const codec = new RecordCodec();
  const event = { id: randomUUID(), type: 'track', data: { event: 'Product Viewed', n: 3 } };

  it('reads a record where it ends, in a buffer that holds more after it', () => {
    // lmdb-js hands the decoder its reused read buffer, longer than the value.
    const record = codec.record(codec.header('anon-1'), 7, codec.body(event, event.id, 1000));
    const reused = Buffer.concat([record, Buffer.from([0x93, 0x01, 0x02, 0x03])]);
    expect(codec.decode(reused, record.length)).toEqual([
      'anon-1',
      7,
      event.id,
      'track',
      1000,
      event.data,
      null,
    ]);
  });

  it('refuses to encode a value: records are written as bytes', () => {
    expect(() => codec.encode({ not: 'bytes' })).toThrow(/written as bytes/);
  });
});
