/**
 * The audit trail: who did what with people's data, and when. Entries are
 * events in the log (one stream), so they are as durable as the data they
 * describe and are read back in order. An entry names the key that acted,
 * never the person acted on in plaintext.
 */
import { randomUUID } from 'node:crypto';
import type { EventStore, JsonObject } from '../eventstore/event-store.js';
import { readStreamIfExists } from '../eventstore/read-stream.js';

export const AUDIT_STREAM = 'tandem-audit';
export const AUDIT_EVENT_TYPE = 'audit.recorded';

export interface AuditEntry {
  /** The key that acted (`key_…`, `bootstrap-admin`, or `cli`). */
  readonly keyId: string;
  /** What it did, e.g. `sql.query`, `segment.export`, `profile.read_pii`, `key.create`. */
  readonly action: string;
  /** `ok`, or the error code it ended with. */
  readonly outcome: string;
  /** What the action needs to be understood later (a query, a segment id, row counts). */
  readonly details?: JsonObject;
}

export interface RecordedAuditEntry extends AuditEntry {
  readonly at: string;
}

export interface AuditLog {
  record(entry: AuditEntry): Promise<void>;
  /** The newest entries first, at most `limit`. */
  recent(limit: number): Promise<RecordedAuditEntry[]>;
}

export function openAuditLog(eventStore: EventStore): AuditLog {
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
        entries.push(event.data as unknown as RecordedAuditEntry);
      return entries;
    },
  };
}
