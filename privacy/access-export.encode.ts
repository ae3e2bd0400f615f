/**
 * The file formats of an access export, each a Readable fed from an async
 * source as the zip consumes it: nothing is gathered first, so a file of a
 * million rows costs the memory of a few. Each reports how many rows it
 * wrote once it has written them all.
 */
import { Readable } from 'node:stream';
import { stringify } from 'csv-stringify/sync';

/** Called once a file is complete, with the rows it holds. */
export type Counted = (rows: number) => void;

/** A JSON array, one element per line, written as the rows arrive. */
export function jsonArray(rows: AsyncIterable<unknown>, counted: Counted): Readable {
  return text(
    (async function* () {
      let n = 0;
      yield '[';
      for await (const row of rows) yield `${n++ === 0 ? '\n' : ',\n'}${JSON.stringify(row)}`;
      yield n === 0 ? ']\n' : '\n]\n';
      counted(n);
    })(),
  );
}

/** One JSON document per line (NDJSON). */
export function ndjson(rows: AsyncIterable<unknown>, counted: Counted): Readable {
  return text(
    (async function* () {
      let n = 0;
      for await (const row of rows) {
        yield `${JSON.stringify(row)}\n`;
        n++;
      }
      counted(n);
    })(),
  );
}

/** One JSON value, pretty-printed: for the small files (the profile). */
export function jsonDocument(value: () => Promise<unknown>, counted: Counted): Readable {
  return text(
    (async function* () {
      yield `${JSON.stringify(await value(), null, 2)}\n`;
      counted(1);
    })(),
  );
}

/**
 * CSV with a header row, RFC 4180 quoting (csv-stringify), UTF-8 with a byte
 * order mark so spreadsheets read accents and CJK right. Objects and arrays
 * become JSON text, booleans `true`/`false`, null and missing values empty.
 * Values are written as they are: no formula escaping, which would put a
 * quote before every `+86…` phone number.
 */
export function csv(
  rows: AsyncIterable<Record<string, unknown>>,
  columns: readonly string[],
  counted: Counted,
): Readable {
  const options = {
    columns: [...columns],
    cast: {
      boolean: (value: boolean) => String(value),
      object: (value: object) => JSON.stringify(value),
      date: (value: Date) => value.toISOString(),
    },
  };
  return text(
    (async function* () {
      let n = 0;
      let page: Record<string, unknown>[] = [];
      yield stringify([], { ...options, header: true, bom: true });
      for await (const row of rows) {
        page.push(row);
        n++;
        if (page.length < CSV_PAGE_ROWS) continue;
        yield stringify(page, options);
        page = [];
      }
      if (page.length > 0) yield stringify(page, options);
      counted(n);
    })(),
  );
}

/** Rows quoted at a time: one string for the zip's deflate instead of one per row. */
const CSV_PAGE_ROWS = 256;
/** Bytes gathered before a chunk goes to the zip: deflate and CRC cost per chunk as well as per byte. */
const CHUNK_BYTES = 64 * 1024;

/** A byte stream of `chunks`, gathered into chunks of about CHUNK_BYTES. */
function text(chunks: AsyncIterable<string>): Readable {
  return Readable.from(
    (async function* () {
      let pending = '';
      for await (const chunk of chunks) {
        pending += chunk;
        if (pending.length < CHUNK_BYTES) continue;
        yield pending;
        pending = '';
      }
      if (pending.length > 0) yield pending;
    })(),
    { objectMode: false },
  );
}
