/**
 * Runs an analyst's query, once the guard passed it, on the read-only
 * analyst connection, in the format asked for:
 * - `json`: ClickHouse's JSON format (`meta`, `data`, `rows`, `statistics`);
 * - `csv`: CSVWithNames (a header line, then the rows);
 * - `arrow`: an Arrow IPC stream (ArrowStream, uncompressed so apache-arrow
 *   reads it), through `exec`, since the client's `query()` refuses it.
 *
 * The whole result is read before the answer starts. An error in the middle
 * of a streamed result could no longer change the HTTP status: the client
 * would get a 200 and a truncated body. Buffering costs memory, but the
 * connection's `max_result_bytes` bounds it, chDB buffers each result whole
 * anyway, and on a server `wait_end_of_query` makes ClickHouse report an error
 * as an error status rather than after rows already sent. It also lets the
 * audit record how many rows went out.
 */
import { Readable } from 'node:stream';
import { tableFromIPC } from 'apache-arrow';
import type { Warehouse } from '../../warehouse/warehouse.js';
import { analystError } from './sql-errors.js';
import { checkAnalystQuery, type QueryParams } from './sql-guard.js';

/** The result formats analysts can ask for. */
export const SQL_FORMATS = ['json', 'csv', 'arrow'] as const;
/** One of `SQL_FORMATS`. */
export type SqlFormat = (typeof SQL_FORMATS)[number];

const FORMATS: Record<SqlFormat, { readonly clickhouse: string; readonly contentType: string }> = {
  json: { clickhouse: 'JSON', contentType: 'application/json; charset=utf-8' },
  csv: { clickhouse: 'CSVWithNames', contentType: 'text/csv; charset=utf-8' },
  arrow: { clickhouse: 'ArrowStream', contentType: 'application/vnd.apache.arrow.stream' },
};

/** One analyst query: the SQL, its `{name:Type}` parameters, the format of the answer. */
export interface AnalystQuery {
  readonly query: string;
  readonly params?: QueryParams | undefined;
  readonly format: SqlFormat;
}

/** A query's result, ready to send. */
export interface AnalystResult {
  readonly contentType: string;
  readonly stream: Readable;
  /** Documented tables and views the query read. */
  readonly tables: readonly string[];
  /** Rows in the result; undefined when they could not be counted. */
  readonly rows: number | undefined;
  readonly bytes: number;
}

/** Checks `request` with the SQL guard and runs it; throws SQL_REFUSED, QUERY_TIMEOUT or QUERY_TOO_LARGE. */
export async function runAnalystQuery(
  warehouse: Warehouse,
  request: AnalystQuery,
): Promise<AnalystResult> {
  const params = request.params ?? {};
  const checked = await checkAnalystQuery(warehouse, request.query, params);
  const { statement, tables } = checked;
  const format = FORMATS[request.format];
  // Read as a subquery, a SELECT without FROM is held to the result limits
  // again. The statement parsed alone, so its brackets balance; it ends at its
  // last token, so neither `)` nor FORMAT can land in a `--` comment.
  const [open, close] = checked.withoutFrom ? ['SELECT * FROM (\n', '\n)'] : ['', ''];
  let body: Buffer;
  try {
    const result = await warehouse.analyst.exec({
      query: `${open}${statement}${close}\nFORMAT ${format.clickhouse}`,
      query_params: params,
      clickhouse_settings: { wait_end_of_query: 1 },
    });
    body = await readAll(result.stream);
  } catch (error) {
    throw analystError(error, warehouse, statement, open);
  }
  return {
    contentType: format.contentType,
    stream: Readable.from([body], { objectMode: false }),
    tables,
    rows: countRows(request.format, body),
    bytes: body.length,
  };
}

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream)
    chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk));
  return Buffer.concat(chunks);
}

function countRows(format: SqlFormat, body: Buffer): number | undefined {
  if (format === 'json') {
    // The top-level `"rows": N` comes after the data, near the end.
    const tail = body.subarray(Math.max(0, body.length - 4096)).toString('utf8');
    const matches = [...tail.matchAll(/\n\t"rows": (\d+)/g)];
    const last = matches.at(-1)?.[1];
    return last === undefined ? undefined : Number(last);
  }
  if (format === 'csv') return csvRecords(body) - 1;
  try {
    return tableFromIPC(body).numRows;
  } catch {
    return undefined;
  }
}

/**
 * Records in CSV as ClickHouse writes it: a newline ends a record unless it is
 * inside a `"`-quoted field (a quote inside a field is doubled, which closes
 * and reopens it). `indexOf` keeps this fast on results of hundreds of MiB.
 */
function csvRecords(body: Buffer): number {
  const QUOTE = 0x22;
  const NEWLINE = 0x0a;
  let records = 0;
  let pos = 0;
  let quote = body.indexOf(QUOTE);
  for (;;) {
    const newline = body.indexOf(NEWLINE, pos);
    if (newline === -1) return records;
    if (quote === -1 || newline < quote) {
      records++;
      pos = newline + 1;
      continue;
    }
    const close = body.indexOf(QUOTE, quote + 1);
    if (close === -1) return records;
    pos = close + 1;
    quote = body.indexOf(QUOTE, pos);
  }
}
