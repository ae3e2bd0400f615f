import { Packr } from 'msgpackr';
import type { EventData, JsonObject, Position, RecordedEvent } from './event-store.js';

/** An event as the `log` database stores it (msgpack array, 7 fields). */
export type StoredRecord = [
  stream: string,
  revision: number,
  id: string,
  type: string,
  recordedAtMs: number,
  data: JsonObject,
  metadata: JsonObject | null,
];

/**
 * Encodes and decodes log records. An append packs each event's body before
 * it takes the write lock, when its revision is not yet known; `record()`
 * then splices the stream and revision in front without re-encoding the data.
 *
 * It is also the `log` database's encoder (lmdb-js's interface: `decode`):
 * lmdb-js then hands each value to `decode` in its own reused buffer instead
 * of copying it into a new Buffer first, since decoding copies out all it
 * keeps (`copyBuffers`: binary values too). Records are written as bytes,
 * past the encoder (`asBinary`).
 */
export class RecordCodec {
  private readonly packr = new Packr({ useRecords: false, copyBuffers: true });

  /** The packed 5-field body: [id, type, recordedAtMs, data, metadata]. */
  body(event: EventData, id: string, recordedAt: number): Buffer {
    return this.packr.pack([id, event.type, recordedAt, event.data, event.metadata ?? null]);
  }

  /** The bytes that start every record of `stream`: the 7-field array marker and the name. */
  header(stream: string): Buffer {
    const name = this.packr.pack(stream);
    const header = Buffer.allocUnsafe(1 + name.length);
    header[0] = 0x97; // fixarray of 7
    name.copy(header, 1);
    return header;
  }

  /** header + revision (uint32) + the body's fields. */
  record(header: Buffer, revision: number, body: Buffer): Buffer {
    const record = Buffer.allocUnsafe(header.length + 5 + body.length - 1);
    header.copy(record, 0);
    record[header.length] = 0xce; // uint32
    record.writeUInt32BE(revision, header.length + 1);
    body.copy(record, header.length + 5, 1); // skip the body's own array marker
    return record;
  }

  /** @param end where the record ends in `bytes` (lmdb-js's reused buffer is longer) */
  decode(bytes: Uint8Array, end?: number): StoredRecord {
    return this.packr.unpack(bytes, end) as StoredRecord;
  }

  /** Records reach the log already encoded (`asBinary`); anything else is a mistake. */
  encode(value: unknown): never {
    throw new TypeError(`log records are written as bytes, not as ${typeof value}`);
  }
}

/** The embedded store's position: one sequence number for both parts. */
export function toPosition(sequence: number): Position {
  const value = BigInt(sequence);
  return { commit: value, prepare: value };
}

export function toRecordedEvent(record: StoredRecord, position: number): RecordedEvent {
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
