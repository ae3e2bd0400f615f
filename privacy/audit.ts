/**
 * The audit trail: who did what with people's data, and when. Entries are
 * events in the log (one stream), so they are as durable as the data they
 * describe and are read back in order. An entry names the key that acted,
 * never the person acted on in plaintext.
 */
import { randomUUID } from 'node:crypto';
import type { EventStore, JsonObject, RecordedEvent } from '../eventstore/event-store.js';
import { readStreamIfExists } from '../eventstore/read-stream.js';
import { ErrorCodes, TandemError } from '../schemas/errors.js';

export const AUDIT_STREAM = 'tandem-audit';
export const AUDIT_EVENT_TYPE = 'audit.recorded';

export interface AuditEntry {
  /** The key that acted (`key_…`, `bootstrap-admin`, or `cli`). */
  readonly keyId: string;
  /** What it did, e.g. `sql.query`, `segment.export`, `profile.read_personal_data`, `key.create`. */
  readonly action: string;
  /** `ok`, or the error code it ended with. */
  readonly outcome: string;
  /** What the action needs to be understood later (a query, a segment id, row counts). */
  readonly details?: JsonObject;
}

export interface RecordedAuditEntry extends AuditEntry {
  /** The entry's event id in the log. */
  readonly id: string;
  readonly at: string;
  readonly details: JsonObject;
}

/** Which entries to read, newest first. */
export interface AuditQuery {
  /** An action (`sql.query`), or a prefix ending in a dot (`privacy.`) for every action under it. */
  readonly action?: string | undefined;
  readonly keyId?: string | undefined;
  /** Entries recorded at or after this time. */
  readonly from?: Date | undefined;
  /** Entries recorded before this time. */
  readonly to?: Date | undefined;
  /** At most this many entries. */
  readonly limit: number;
  /** Where the previous page stopped (its `next`). */
  readonly cursor?: string | undefined;
}

export interface AuditPage {
  readonly entries: RecordedAuditEntry[];
  /** The cursor of the next (older) page; undefined when there is nothing older to look at. */
  readonly next: string | undefined;
}

export interface AuditLog {
  record(entry: AuditEntry): Promise<void>;
  /** The newest entries first, at most `limit`. */
  recent(limit: number): Promise<RecordedAuditEntry[]>;
  /** A page of the entries matching `query`, newest first. */
  page(query: AuditQuery): Promise<AuditPage>;
}

/**
 * Entries one page looks at, at most: a filter that matches little answers a
 * short page (even an empty one) with a `next` rather than reading the whole
 * trail in one request.
 */
export const AUDIT_SCAN_LIMIT = 50_000;

/**
 * How far out of order entries' times may be. Each writer stamps its own
 * clock, so with several processes the stream's order is the time order only
 * to within their clock skew; time bounds are searched this much wider and
 * then applied exactly.
 */
const CLOCK_SLACK_MS = 60_000;

export interface AuditLogOptions {
  /** Entries one page looks at, at most (`AUDIT_SCAN_LIMIT`; smaller in tests). */
  readonly scanLimit?: number;
}

export function openAuditLog(eventStore: EventStore, options: AuditLogOptions = {}): AuditLog {
  const scanLimit = options.scanLimit ?? AUDIT_SCAN_LIMIT;
  return {
    async record(entry) {
      const at = new Date().toISOString();
      await eventStore.append(AUDIT_STREAM, [
        {
          id: randomUUID(),
          type: AUDIT_EVENT_TYPE,
          data: { at, ...entry, details: entry.details ?? {} },
        },
      ]);
    },
    async recent(limit) {
      const entries: RecordedAuditEntry[] = [];
      for await (const event of readStreamIfExists(eventStore, AUDIT_STREAM, {
        direction: 'backwards',
        maxCount: limit,
      }))
        entries.push(entryOf(event));
      return entries;
    },
    page: (query) => readPage(eventStore, query, scanLimit),
  };
}

/**
 * The trail is one stream, read backwards from the newest entry, the
 * cursor's revision, or — with `to` and no cursor — the last entry before
 * `to`, found by bisecting the stream (entries are appended in time order, to
 * within the writers' clock skew), so a look at last month does not read
 * this month. Reading stops at the page's `limit`, at the first entry well
 * before `from`, or after `scanLimit` entries, whichever comes first.
 */
async function readPage(
  eventStore: EventStore,
  query: AuditQuery,
  scanLimit: number,
): Promise<AuditPage> {
  const from = query.from?.getTime();
  const to = query.to?.getTime();
  const start =
    query.cursor !== undefined
      ? decodeCursor(query.cursor)
      : to === undefined
        ? 'end'
        : await lastRevisionBefore(eventStore, to + CLOCK_SLACK_MS);
  if (start === undefined) return { entries: [], next: undefined };
  const entries: RecordedAuditEntry[] = [];
  let scanned = 0;
  for await (const event of readStreamIfExists(eventStore, AUDIT_STREAM, {
    direction: 'backwards',
    fromRevision: start,
    maxCount: scanLimit + 1,
  })) {
    const entry = entryOf(event);
    const at = Date.parse(entry.at);
    if (from !== undefined && at < from - CLOCK_SLACK_MS) break;
    if (entries.length === query.limit || scanned === scanLimit)
      return { entries, next: encodeCursor(event.revision) };
    scanned++;
    if (
      (from === undefined || at >= from) &&
      (to === undefined || at < to) &&
      (query.keyId === undefined || entry.keyId === query.keyId) &&
      actionMatches(entry.action, query.action)
    )
      entries.push(entry);
  }
  return { entries, next: undefined };
}

function actionMatches(action: string, wanted: string | undefined): boolean {
  if (wanted === undefined) return true;
  return wanted.endsWith('.') ? action.startsWith(wanted) : action === wanted;
}

/** The revision of the last entry recorded before `time`, or undefined when there is none. */
async function lastRevisionBefore(
  eventStore: EventStore,
  time: number,
): Promise<number | undefined> {
  const at = async (revision: number | 'end') => {
    for await (const event of readStreamIfExists(eventStore, AUDIT_STREAM, {
      direction: 'backwards',
      fromRevision: revision,
      maxCount: 1,
    }))
      return { revision: event.revision, time: Date.parse(entryOf(event).at) };
    return undefined;
  };
  const last = await at('end');
  if (!last) return undefined;
  if (last.time < time) return last.revision;
  // Invariant: entries up to `low` may be before `time`; the one at `high` is not.
  let low = -1;
  let high = last.revision;
  while (high - low > 1) {
    const middle = Math.floor((low + high) / 2);
    const found = await at(middle);
    if (found && found.time < time) low = middle;
    else high = middle;
  }
  return low < 0 ? undefined : low;
}

function entryOf(event: RecordedEvent): RecordedAuditEntry {
  const data = event.data as unknown as Omit<RecordedAuditEntry, 'id'>;
  return {
    id: event.id,
    at: data.at,
    keyId: data.keyId,
    action: data.action,
    outcome: data.outcome,
    details: data.details ?? {},
  };
}

const CURSOR_PREFIX = 'audit:';

function encodeCursor(revision: number): string {
  return Buffer.from(`${CURSOR_PREFIX}${revision}`).toString('base64url');
}

function decodeCursor(cursor: string): number {
  const text = Buffer.from(cursor, 'base64url').toString('utf8');
  const revision = Number(text.slice(CURSOR_PREFIX.length));
  if (!/^audit:\d{1,15}$/.test(text)) {
    const message = 'is not a cursor this endpoint gave (use the `next` of the previous page)';
    throw new TandemError(ErrorCodes.VALIDATION, `invalid input: cursor: ${message}`, {
      issues: [{ path: 'cursor', message }],
    });
  }
  return revision;
}
