/**
 * The access (DSAR) export: everything Tandem holds about one person, as a
 * zip of JSON files with one CSV per table and a README saying what each
 * file is.
 *
 * Strategy. A zip's files follow one another, so each file is a Readable
 * made only when the zip reaches it (yazl's `addReadStreamLazy`) and fed as
 * the zip consumes it: events are read from the log a page at a time and
 * rows stream out of ClickHouse, so a person with 100k events costs the
 * memory of a few pages, never of all their events. Files that need the same
 * rows twice (JSON and CSV) read them twice rather than keep them.
 *
 * The log holds identifiers only as keyed hashes. Their plain values are
 * learnt while `events.ndjson` is written (a personal field whose value
 * hashes to one of the person's identifiers is that identifier), so the
 * files that name identifiers come after it; an identifier never seen in
 * the clear (a payment token from a till) is listed with a null value.
 *
 * Nothing about the person is logged, and the summary holds only counts.
 */
import { randomUUID } from 'node:crypto';
import { type PassThrough, type Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ZipFile } from 'yazl';
import type { EventReader } from '../eventstore/event-store.js';
import { profileStream } from '../schemas/identity.js';
import type { Warehouse } from '../warehouse/warehouse.js';
import { type Counted, csv, jsonArray, jsonDocument, ndjson } from './access-export.encode.js';
import {
  EVENT_CSV_COLUMNS,
  eventCsvRow,
  IdentifierRecovery,
  identifierKey,
  personEvents,
  readIfLive,
} from './access-export.events.js';
import * as tables from './access-export.warehouse.js';
import type { IdentifierHasher, NormaliseOptions } from './identifiers.js';
import type { KeyStore } from './keystore.js';
import type { Person } from './person.js';

export interface AccessExportDeps {
  readonly eventStore: Pick<EventReader, 'readStream'>;
  readonly keyStore: Pick<KeyStore, 'find'>;
  readonly warehouse: Warehouse;
  readonly hasher: IdentifierHasher;
  readonly normalise: NormaliseOptions;
}

export interface AccessExportOptions {
  /** The privacy request the export answers; written in the README. A new id when missing. */
  readonly requestId: string;
  /** When the export is produced (the README's date and the files' times). */
  readonly now?: Date;
}

/** What an export wrote, without anything about the person but counts. */
export interface AccessExportSummary {
  readonly requestId: string;
  readonly producedAt: string;
  /** Entries written to each file, by file name (rows, events, decisions; 1 for a document). */
  readonly files: Readonly<Record<string, number>>;
  /** The person's identifiers, and how many of them the export names in plain text. */
  readonly identifiers: { readonly total: number; readonly inPlainText: number };
  /** Bytes of the zip. */
  readonly bytes: number;
  readonly tookMs: number;
}

interface ExportFile {
  readonly name: string;
  readonly about: string;
  open(counted: Counted): Readable;
}

/** Writes the zip to `out` as it reads, and ends `out`; resolves with counts per file (no PII). */
export async function writeAccessExport(
  deps: AccessExportDeps,
  person: Person,
  out: NodeJS.WritableStream,
  options?: AccessExportOptions,
): Promise<AccessExportSummary> {
  const started = performance.now();
  const now = options?.now ?? new Date();
  const requestId = options?.requestId ?? randomUUID();
  const recovery = new IdentifierRecovery(person.identifiers, deps.hasher, deps.normalise);
  const files = exportFiles(deps, person, recovery);
  const counts: Record<string, number> = {};

  const zip = new ZipFile();
  let bytes = 0;
  const measured = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      bytes += chunk.length;
      done(null, chunk);
    },
  });
  const output = zip.outputStream as PassThrough;
  // A failed file fails the zip: `out` is destroyed rather than left looking complete.
  zip.on('error', (error: Error) => output.destroy(error));
  const written = pipeline(output, measured, out);
  const readme = readmeText(requestId, now, files);
  zip.addBuffer(Buffer.from(readme, 'utf8'), 'README.txt', { mtime: now });
  counts['README.txt'] = 1;
  for (const file of files)
    zip.addReadStreamLazy(file.name, { mtime: now }, (callback) => {
      try {
        const stream = file.open((n) => {
          counts[file.name] = n;
        });
        stream.on('error', (error) => zip.emit('error', error));
        callback(null, stream);
      } catch (error) {
        callback(error, undefined as unknown as NodeJS.ReadableStream);
      }
    });
  zip.end();
  await written;
  return {
    requestId,
    producedAt: now.toISOString(),
    files: counts,
    identifiers: { total: person.identifiers.length, inPlainText: recovery.recovered },
    bytes,
    tookMs: Math.round(performance.now() - started),
  };
}

/** The files after the README, in the order they are written. */
function exportFiles(
  deps: AccessExportDeps,
  person: Person,
  recovery: IdentifierRecovery,
): ExportFile[] {
  const { warehouse } = deps;
  const keys: tables.PersonKeys = {
    ids: person.profileIds,
    hashes: person.identifiers.map((identifier) => identifier.hash),
  };
  const own = new Set(person.identifiers.map(identifierKey));
  const value = (type: string, hash: string) =>
    own.has(identifierKey({ type, hash })) ? (recovery.valueOf({ type, hash }) ?? null) : null;
  const identifiers = async function* () {
    for (const identifier of person.identifiers) {
      const plain = recovery.valueOf(identifier);
      yield {
        type: identifier.type,
        value: plain ?? null,
        hash: identifier.hash,
        note:
          plain === undefined
            ? 'Tandem holds this identifier only as a keyed hash; its plain value is in none of your events.'
            : null,
      };
    }
  };
  const memberships = async function* () {
    yield* tables.membershipRows(warehouse, keys, await tables.segmentNames(deps.eventStore));
  };
  /** A table as JSON and as CSV, each reading its rows afresh. */
  const table = (
    name: string,
    about: string,
    columns: readonly string[],
    read: () => AsyncIterable<Record<string, unknown>>,
  ): ExportFile[] => [
    { name: `${name}.json`, about, open: (counted) => jsonArray(read(), counted) },
    { name: `${name}.csv`, about: `${name}.json as CSV.`, open: (c) => csv(read(), columns, c) },
  ];

  return [
    {
      name: 'profile.json',
      about:
        'Your profile: how Tandem joins what it knows about you across the web, the app and the stores. Its state (active, or merged into another profile), its traits, and your consent now for each purpose. More than one profile appears when profiles were merged into yours.',
      open: (counted) =>
        jsonDocument(
          async () => ({
            profileIds: person.profileIds,
            profiles: await collect(tables.profileRows(warehouse, keys)),
            traits: await collect(tables.traitRows(warehouse, keys)),
            consent: await collect(tables.consentRows(warehouse, keys)),
          }),
          counted,
        ),
    },
    {
      name: 'profiles.csv',
      about: 'The profiles of profile.json as CSV.',
      open: (c) => csv(tables.profileRows(warehouse, keys), tables.PROFILE_COLUMNS, c),
    },
    {
      name: 'traits.csv',
      about: 'The traits of profile.json as CSV (values as JSON text).',
      open: (c) => csv(tables.traitRows(warehouse, keys), tables.TRAIT_COLUMNS, c),
    },
    {
      name: 'consents.csv',
      about: 'Your consent now, per purpose, as in profile.json.',
      open: (c) => csv(tables.consentRows(warehouse, keys), tables.CONSENT_COLUMNS, c),
    },
    {
      name: 'events.ndjson',
      about:
        'Every event Tandem received about you, online (web, app) and offline (store receipts), one JSON document per line, with your personal fields decrypted and put back where they were sent. `filedUnder` is the kind of identifier the event is kept under; `withheld` lists fields left out because they identify someone else.',
      open: (counted) => ndjson(personEvents(deps, person.identifiers, recovery), counted),
    },
    {
      name: 'events.csv',
      about:
        'The events of events.ndjson, one row each: the main columns, and everything that was sent as JSON text in `data`.',
      open: (counted) =>
        csv(
          mapRows(personEvents(deps, person.identifiers), eventCsvRow),
          EVENT_CSV_COLUMNS,
          counted,
        ),
    },
    ...table(
      'identifiers',
      'Every identifier linked to you: email, phone, member card, login, device and payment ids. `value` is the plain value (normalised: emails lower-case, phones in international form); Tandem itself stores only `hash`, a keyed hash of it. A null value means the plain value was never kept.',
      ['type', 'value', 'hash', 'note'],
      identifiers,
    ),
    ...table(
      'consent_history',
      'Every consent you gave or withdrew, per purpose, with when and where (web, app, pos…), oldest first.',
      tables.CONSENT_HISTORY_COLUMNS,
      () => tables.consentHistoryRows(warehouse, keys),
    ),
    ...table(
      'orders',
      'Your orders online and receipts in stores, with the identifier each was recorded under.',
      tables.ORDER_COLUMNS,
      () => tables.orderRows(warehouse, keys, value),
    ),
    ...table(
      'order_lines',
      'The lines of those orders and receipts: product, quantity, prices.',
      tables.ORDER_LINE_COLUMNS,
      () => tables.orderLineRows(warehouse, keys),
    ),
    ...table(
      'segment_memberships',
      'The audience segments you were in: when you entered and left each (left_at empty while you are still in it).',
      tables.MEMBERSHIP_COLUMNS,
      memberships,
    ),
    ...table(
      'recommendations',
      'The product recommendation models your interactions helped train (only while you consented to personalization): when each was trained, up to when it looked, and how many of your items it used.',
      tables.RECOMMENDATION_COLUMNS,
      () => tables.recommendationRows(warehouse, keys),
    ),
    {
      name: 'identity.json',
      about:
        'How Tandem decided which identifiers are you: every decision of your profiles (created, linked, merged, consent and trait changes), with the event that caused it. Identifiers that are not yours appear without a value.',
      open: (counted) => jsonArray(identityDecisions(deps, person, value), counted),
    },
  ];
}

/** The decisions of the person's profiles, each identifier in them as its plain value when it is theirs. */
async function* identityDecisions(
  deps: Pick<AccessExportDeps, 'eventStore'>,
  person: Person,
  value: (type: string, hash: string) => string | null,
): AsyncGenerator<unknown> {
  const own = new Set(person.identifiers.map(identifierKey));
  const plain = (node: unknown): unknown => {
    if (Array.isArray(node)) return node.map(plain);
    if (node === null || typeof node !== 'object') return node;
    const record = node as Record<string, unknown>;
    if (typeof record.type === 'string' && typeof record.hash === 'string') {
      const identifier = { type: record.type, hash: record.hash };
      return own.has(identifierKey(identifier))
        ? { type: identifier.type, value: value(identifier.type, identifier.hash) }
        : { type: identifier.type, value: null, yours: false };
    }
    return Object.fromEntries(Object.entries(record).map(([key, field]) => [key, plain(field)]));
  };
  for (const profileId of person.profileIds)
    for await (const event of readIfLive(deps.eventStore, profileStream(profileId)))
      yield { decisionEventId: event.id, ...(plain(event.data) as Record<string, unknown>) };
}

function readmeText(requestId: string, now: Date, files: readonly ExportFile[]): string {
  const wrap = (text: string, indent: string) => {
    const lines: string[] = [];
    for (const word of text.split(' ')) {
      const last = lines.at(-1);
      if (last !== undefined && last.length + word.length < 76 - indent.length)
        lines[lines.length - 1] = `${last} ${word}`;
      else lines.push(word);
    }
    return lines.map((line) => `${indent}${line}`).join('\n');
  };
  return [
    'Your personal data held by Tandem',
    '==================================',
    '',
    `Produced: ${now.toISOString()}`,
    `Request:  ${requestId}`,
    '',
    wrap(
      'This archive holds everything Tandem holds about you: your profile, your identifiers in plain text, every event from the web, the app and the stores with your personal fields decrypted, your consent history, the segments you were in, and the recommendation models your data trained. The identifiers and values in it are your own data.',
      '',
    ),
    '',
    wrap(
      'Times are UTC (ISO-8601). JSON files hold exact values; each CSV file is the same table flattened, UTF-8 with a byte order mark, comma-separated, quoted where needed, nested values as JSON text.',
      '',
    ),
    '',
    'Files',
    '-----',
    '',
    'README.txt',
    '    This file.',
    ...files.flatMap((file) => [file.name, wrap(file.about, '    ')]),
    '',
  ].join('\n');
}

async function collect<T>(rows: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const row of rows) out.push(row);
  return out;
}

async function* mapRows<T, U>(rows: AsyncIterable<T>, map: (row: T) => U): AsyncGenerator<U> {
  for await (const row of rows) yield map(row);
}
