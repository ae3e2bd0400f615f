/**
 * Bulk import sources: a file of receipts read as a sequence of items, each a
 * receipt to validate or an error, each with where it was in the file (a line
 * for text formats, a row for columnar ones) so a report can point at it.
 */
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { RecordBatchReader } from 'apache-arrow';
import { parse as parseCsv } from 'csv-parse';
import { asyncBufferFromFile, parquetMetadataAsync, parquetReadObjects } from 'hyparquet';
import type { FieldIssue } from '../../schemas/errors.js';
import { POS_LINE_COLUMNS, PosLineRow, PosReceipt } from '../../schemas/pos.js';

export const IMPORT_FORMATS = ['ndjson', 'csv', 'arrow', 'parquet'] as const;
export type ImportFormat = (typeof IMPORT_FORMATS)[number];

/** Where an item was: `line 12` of a text file, `row 5` of a columnar one. */
export interface ItemPosition {
  readonly line?: number;
  readonly row?: number;
}

export type ImportItem =
  | { readonly kind: 'receipt'; readonly at: ItemPosition; readonly receipt: PosReceipt }
  | { readonly kind: 'error'; readonly at: ItemPosition; readonly issues: readonly FieldIssue[] };

/** Reads the receipts of a file in one of the import formats, validating each. */
export function readImportItems(path: string, format: ImportFormat): AsyncIterable<ImportItem> {
  switch (format) {
    case 'ndjson':
      return ndjsonItems(path);
    case 'csv':
      return receiptsFromRows(csvRows(path));
    case 'arrow':
      return receiptsFromRows(arrowRows(path));
    case 'parquet':
      return receiptsFromRows(parquetRows(path));
  }
}

async function* ndjsonItems(path: string): AsyncGenerator<ImportItem> {
  let line = 0;
  for await (const text of createInterface({
    input: createReadStream(path),
    crlfDelay: Number.POSITIVE_INFINITY,
  })) {
    line++;
    if (text.trim() === '') continue;
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (error) {
      yield {
        kind: 'error',
        at: { line },
        issues: [{ path: '', message: `not JSON: ${(error as Error).message}` }],
      };
      continue;
    }
    const parsed = PosReceipt.safeParse(value);
    yield parsed.success
      ? { kind: 'receipt', at: { line }, receipt: parsed.data }
      : { kind: 'error', at: { line }, issues: issuesOf(parsed.error.issues) };
  }
}

type RawRow = { readonly at: ItemPosition; readonly values: Record<string, unknown> };

const NUMERIC = new Set(['line_no', 'quantity', 'unit_price', 'discount']);
const NULLABLE = new Set(['card_token', 'wallet_id', 'member_id', 'phone', 'consent_purposes']);

async function* csvRows(path: string): AsyncGenerator<RawRow> {
  const parser = createReadStream(path).pipe(
    parseCsv({ columns: true, info: true, skip_empty_lines: true, relax_column_count: false }),
  );
  for await (const { record, info } of parser as AsyncIterable<{
    record: Record<string, string>;
    info: { lines: number };
  }>) {
    const values: Record<string, unknown> = {};
    for (const [column, text] of Object.entries(record)) {
      values[column] =
        NUMERIC.has(column) && text !== ''
          ? Number(text)
          : NULLABLE.has(column) && text === ''
            ? null
            : text;
    }
    yield { at: { line: info.lines }, values };
  }
}

async function* arrowRows(path: string): AsyncGenerator<RawRow> {
  let row = 0;
  for await (const batch of await RecordBatchReader.from(createReadStream(path))) {
    for (const record of batch) {
      row++;
      yield { at: { row }, values: { ...(record?.toJSON() as Record<string, unknown>) } };
    }
  }
}

const PARQUET_CHUNK_ROWS = 50_000;

async function* parquetRows(path: string): AsyncGenerator<RawRow> {
  // Parquet keeps its index at the end of the file: it is read from disk in chunks of rows.
  const file = await asyncBufferFromFile(path);
  const metadata = await parquetMetadataAsync(file);
  const total = Number(metadata.num_rows);
  for (let start = 0; start < total; start += PARQUET_CHUNK_ROWS) {
    const end = Math.min(total, start + PARQUET_CHUNK_ROWS);
    const rows = await parquetReadObjects({
      file,
      metadata,
      columns: [...POS_LINE_COLUMNS],
      rowStart: start,
      rowEnd: end,
    });
    for (const [i, values] of rows.entries()) {
      const plain = Object.entries(values).map(([key, value]) => [
        key,
        typeof value === 'bigint' ? Number(value) : value,
      ]);
      yield { at: { row: start + i + 1 }, values: Object.fromEntries(plain) };
    }
  }
}

/**
 * Flat rows → receipts: a receipt's lines are consecutive rows with the same
 * `receipt_id`; the receipt-level fields come from its first row, its one
 * tender pays the lines' total.
 */
async function* receiptsFromRows(rows: AsyncIterable<RawRow>): AsyncGenerator<ImportItem> {
  let group: { at: ItemPosition; rows: PosLineRow[] } | undefined;
  const finish = (): ImportItem | undefined =>
    group ? toReceipt(group.at, group.rows) : undefined;
  for await (const { at, values } of rows) {
    const parsed = PosLineRow.safeParse(values);
    if (!parsed.success) {
      yield { kind: 'error', at, issues: issuesOf(parsed.error.issues) };
      continue;
    }
    if (group && group.rows[0]?.receipt_id === parsed.data.receipt_id) {
      group.rows.push(parsed.data);
      continue;
    }
    const done = finish();
    if (done) yield done;
    group = { at, rows: [parsed.data] };
  }
  const last = finish();
  if (last) yield last;
}

function toReceipt(at: ItemPosition, rows: readonly PosLineRow[]): ImportItem {
  const first = rows[0] as PosLineRow;
  const cents = rows.reduce(
    (sum, row) =>
      sum + Math.round(row.unit_price * 100) * row.quantity - Math.round(row.discount * 100),
    0,
  );
  let purposes: unknown;
  try {
    purposes = first.consent_purposes === null ? undefined : JSON.parse(first.consent_purposes);
  } catch {
    return { kind: 'error', at, issues: [{ path: 'consent_purposes', message: 'is not JSON' }] };
  }
  const parsed = PosReceipt.safeParse({
    receiptId: first.receipt_id,
    storeId: first.store_id,
    registerId: first.register_id,
    occurredAt: first.occurred_at,
    currency: first.currency,
    lines: rows.map((row) => ({
      sku: row.sku,
      quantity: row.quantity,
      unitPrice: row.unit_price,
      discount: row.discount,
    })),
    tenders: [
      {
        type: first.tender_type,
        amount: cents / 100,
        ...(first.card_token === null ? {} : { cardToken: first.card_token }),
        ...(first.wallet_id === null ? {} : { walletId: first.wallet_id }),
      },
    ],
    ...(first.member_id === null ? {} : { memberId: first.member_id }),
    ...(first.phone === null ? {} : { phone: first.phone }),
    ...(purposes === undefined ? {} : { consent: { purposes } }),
  });
  return parsed.success
    ? { kind: 'receipt', at, receipt: parsed.data }
    : { kind: 'error', at, issues: issuesOf(parsed.error.issues) };
}

function issuesOf(
  issues: readonly { path: readonly PropertyKey[]; message: string }[],
): FieldIssue[] {
  return issues.map((issue) => ({
    path: issue.path.map(String).join('.'),
    message: issue.message,
  }));
}
