/**
 * Exporting a segment's members — only those who consented to the purpose
 * the export is for (invariant 6), checked against their consent now, even
 * when the segment is evaluated as of a past time.
 *
 * Without a contact field the rows stream straight out of ClickHouse in the
 * format asked for (CSV, NDJSON, Arrow IPC stream). With one (`email` or
 * `phone`), each consenting member's contact is unsealed from the newest
 * events of that identifier; the rows then pass through this process.
 */
import { PassThrough, Readable } from 'node:stream';
import { RecordBatchStreamWriter, Table, Utf8, vectorFromArray } from 'apache-arrow';
import type { EventReader } from '../../eventstore/event-store.js';
import type { KeyStore } from '../../privacy/keystore.js';
import { latestPersonalData } from '../../privacy/personal-data.js';
import type { Warehouse } from '../../warehouse/warehouse.js';
import type { CompiledSegment } from './segment-compiler.js';

export const EXPORT_FORMATS = ['csv', 'ndjson', 'arrow'] as const;
export type ExportFormat = (typeof EXPORT_FORMATS)[number];
export const CONTACT_FIELDS = ['email', 'phone'] as const;
export type ContactField = (typeof CONTACT_FIELDS)[number];

export interface ExportDeps {
  readonly warehouse: Warehouse;
  readonly eventStore: Pick<EventReader, 'readStream'>;
  readonly keyStore: Pick<KeyStore, 'find'>;
}

export interface ExportOptions {
  readonly purpose: string;
  readonly format: ExportFormat;
  readonly contact?: ContactField | undefined;
}

export interface ExportStream {
  readonly contentType: string;
  readonly stream: Readable;
}

const CONTENT_TYPES: Record<ExportFormat, string> = {
  csv: 'text/csv; charset=utf-8',
  ndjson: 'application/x-ndjson',
  arrow: 'application/vnd.apache.arrow.stream',
};
const CLICKHOUSE_FORMATS = {
  csv: 'CSVWithNames',
  ndjson: 'JSONEachRow',
  arrow: 'ArrowStream',
} as const;
const ARROW_BATCH_ROWS = 10_000;

/** The consenting members of `members` (a compiled segment): profile id and when they consented. */
function consentingSql(
  deps: ExportDeps,
  members: CompiledSegment,
  contact: ContactField | undefined,
) {
  const { warehouse } = deps;
  // Ingest files personal data under the stream of the device or account an
  // event came from, not under the email's: every identifier may hold it.
  const contactColumn = contact
    ? `, (SELECT groupArray((identifier_type, identifier_hash)) FROM ${warehouse.table('identity')} AS i
          WHERE i.profile_id = c.profile_id) AS identifiers`
    : '';
  return {
    sql: `SELECT c.profile_id AS profile_id, toString(c.stated_at) AS consented_at${contactColumn}
FROM ${warehouse.table('consents')} AS c
WHERE c.purpose = {export_purpose:String} AND c.granted
  AND c.profile_key IN (SELECT profile_key FROM ${warehouse.table('profiles')} WHERE ${members.where})
ORDER BY c.profile_id`,
    params: members.params,
  };
}

/** Streams the consenting members of `members` in the asked format. */
export async function exportMembers(
  deps: ExportDeps,
  members: CompiledSegment,
  options: ExportOptions,
): Promise<ExportStream> {
  const { sql, params } = consentingSql(deps, members, options.contact);
  const query_params = { ...params, export_purpose: options.purpose };
  const { client } = deps.warehouse;
  const contentType = CONTENT_TYPES[options.format];

  if (options.contact === undefined) {
    // exec hands over ClickHouse's bytes as they come, whatever the format.
    const result = await client.exec({
      query: `${sql}\nSETTINGS output_format_arrow_compression_method = 'none'\nFORMAT ${CLICKHOUSE_FORMATS[options.format]}`,
      query_params,
    });
    return { contentType, stream: result.stream as Readable };
  }

  const result = await client.query({ query: sql, query_params, format: 'JSONEachRow' });
  const contact = options.contact;
  const source = result.stream() as unknown as AsyncIterable<{ json(): unknown }[]>;
  async function* unsealed() {
    for await (const batch of source)
      for (const row of batch) {
        const member = row.json() as {
          profile_id: string;
          consented_at: string;
          identifiers: [string, string][];
        };
        yield {
          profile_id: member.profile_id,
          consented_at: member.consented_at,
          [contact]: await contactOf(deps, contact, member.identifiers),
        };
      }
  }
  return { contentType, stream: encode(unsealed(), options.format, contact) };
}

/** Where a contact field is likeliest sealed: accounts first, then devices, then the rest. */
const STREAM_ORDER = ['user_id', 'member_id', 'anonymous_id', 'phone', 'payment_token', 'email'];

/** The newest value of the contact field sealed in the events of the profile's identifiers. */
async function contactOf(
  deps: ExportDeps,
  field: ContactField,
  identifiers: readonly [string, string][],
): Promise<string | null> {
  const ordered = [...identifiers].sort(([a], [b]) => rank(a) - rank(b));
  for (const [type, hash] of ordered) {
    const personal = await latestPersonalData(deps.eventStore, deps.keyStore, { type, hash });
    const found = Object.entries(personal).find(
      ([path, value]) => path.toLowerCase().endsWith(field) && typeof value === 'string',
    );
    if (found) return found[1] as string;
  }
  return null;
}

function rank(type: string): number {
  const index = STREAM_ORDER.indexOf(type);
  return index < 0 ? STREAM_ORDER.length : index;
}

type Row = Record<string, string | null>;

function encode(rows: AsyncIterable<Row>, format: ExportFormat, contact: ContactField): Readable {
  const columns = ['profile_id', 'consented_at', contact];
  if (format === 'ndjson')
    return Readable.from(
      (async function* () {
        for await (const row of rows) yield `${JSON.stringify(row)}\n`;
      })(),
    );
  if (format === 'csv')
    return Readable.from(
      (async function* () {
        yield `${columns.join(',')}\n`;
        for await (const row of rows)
          yield `${columns.map((c) => csvField(row[c] ?? null)).join(',')}\n`;
      })(),
    );
  const writer = new RecordBatchStreamWriter();
  const out = new PassThrough();
  writer.toNodeStream().pipe(out);
  void (async () => {
    let batch: Row[] = [];
    const flush = () => {
      // Typed as Utf8 explicitly: a batch whose contacts are all missing must keep the schema.
      writer.write(
        new Table(
          Object.fromEntries(
            columns.map((c) => [
              c,
              vectorFromArray(
                batch.map((row) => row[c] ?? null),
                new Utf8(),
              ),
            ]),
          ),
        ),
      );
      batch = [];
    };
    try {
      for await (const row of rows) {
        batch.push(row);
        if (batch.length >= ARROW_BATCH_ROWS) flush();
      }
      if (batch.length > 0) flush();
      writer.finish();
    } catch (error) {
      out.destroy(error as Error);
    }
  })();
  return out;
}

function csvField(value: string | null): string {
  if (value === null) return '';
  return /[",\n\r]/.test(value) ? `"${value.replaceAll('"', '""')}"` : value;
}
