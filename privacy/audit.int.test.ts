import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EventStore } from '../eventstore/event-store.js';
import { openLmdbEventStore } from '../eventstore/event-store.lmdb.js';
import { ErrorCodes } from '../schemas/errors.js';
import {
  AUDIT_EVENT_TYPE,
  AUDIT_STREAM,
  type AuditLog,
  type AuditQuery,
  openAuditLog,
  type RecordedAuditEntry,
} from './audit.js';

const HOUR = 3_600_000;
const T0 = Date.parse('2025-01-01T00:00:00Z');
const COUNT = 1000;
/** Entry `i` is recorded at T0 + i hours, by `key_${i % 4}`, doing one of three actions. */
const ACTIONS = ['sql.query', 'privacy.request', 'privacy.export'] as const;

let dir: string;
let store: EventStore;
/** Events the audit log read from the store. */
let reads = 0;
let audit: AuditLog;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tandem-audit-'));
  store = await openLmdbEventStore({ path: join(dir, 'eventstore') });
  await store.append(
    AUDIT_STREAM,
    Array.from({ length: COUNT }, (_, i) => ({
      id: crypto.randomUUID(),
      type: AUDIT_EVENT_TYPE,
      data: {
        at: new Date(T0 + i * HOUR).toISOString(),
        keyId: `key_${i % 4}`,
        action: ACTIONS[i % 3] as string,
        outcome: 'ok',
        details: { i },
      },
    })),
  );
  const counting = Object.create(store) as EventStore;
  counting.readStream = async function* (stream, options) {
    for await (const event of store.readStream(stream, options)) {
      reads++;
      yield event;
    }
  };
  audit = openAuditLog(counting, { scanLimit: 300 });
});
afterAll(async () => {
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

const indexes = (entries: readonly RecordedAuditEntry[]) => entries.map((entry) => entry.details.i);

/** Every page of a query, following `next`. */
async function allPages(query: Omit<AuditQuery, 'cursor'>) {
  const pages: RecordedAuditEntry[][] = [];
  let cursor: string | undefined;
  do {
    const page = await audit.page({ ...query, cursor });
    pages.push(page.entries);
    cursor = page.next;
  } while (cursor !== undefined && pages.length < 100);
  return pages;
}

describe(openAuditLog.name, () => {
  it('pages the trail newest first, each entry once, until next is undefined', async () => {
    const first = await audit.page({ limit: 3 });
    expect(indexes(first.entries)).toEqual([999, 998, 997]);
    expect(first.entries[0]).toMatchObject({ keyId: 'key_3', action: 'sql.query', outcome: 'ok' });
    expect(first.entries[0]?.id).toMatch(/^[0-9a-f-]{36}$/);
    const pages = await allPages({ limit: 100 });
    expect(pages).toHaveLength(10);
    expect(indexes(pages.flat())).toEqual(Array.from({ length: COUNT }, (_, i) => COUNT - 1 - i));
  });

  it('filters by exact action, by action prefix and by key', async () => {
    const exact = await audit.page({ action: 'privacy.export', limit: 5 });
    expect(indexes(exact.entries)).toEqual([998, 995, 992, 989, 986]);
    const prefix = await audit.page({ action: 'privacy.', limit: 4 });
    expect(indexes(prefix.entries)).toEqual([998, 997, 995, 994]);
    expect((await audit.page({ action: 'privacy', limit: 4 })).entries).toEqual([]);
    const byKey = await audit.page({ keyId: 'key_1', action: 'sql.query', limit: 2 });
    expect(indexes(byKey.entries)).toEqual([993, 981]);
  });

  it('takes entries from `from` (inclusive) to `to` (exclusive), starting near `to` rather than at the newest', async () => {
    reads = 0;
    const page = await audit.page({
      from: new Date(T0 + 100 * HOUR),
      to: new Date(T0 + 110 * HOUR),
      limit: 1000,
    });
    expect(indexes(page.entries)).toEqual([109, 108, 107, 106, 105, 104, 103, 102, 101, 100]);
    expect(page.next).toBeUndefined();
    // A bisection to entry 110 and the clock slack around both ends, not the 890 newer entries.
    expect(reads).toBeLessThan(30);
  });

  it('answers a short page with a next when the filter matched little of what it looked at', async () => {
    const pages = await allPages({ keyId: 'key_0', to: new Date(T0 + 5 * HOUR), limit: 10 });
    expect(indexes(pages.flat())).toEqual([4, 0]);
    const rare = await allPages({ keyId: 'key_2', action: 'privacy.export', limit: 50 });
    expect(rare.length).toBeGreaterThan(1);
    expect(rare[0]?.length).toBeLessThan(50);
    expect(indexes(rare.flat())).toEqual(
      Array.from({ length: COUNT }, (_, i) => COUNT - 1 - i).filter(
        (i) => i % 4 === 2 && i % 3 === 2,
      ),
    );
  });

  it('is empty before the first entry and refuses a cursor it did not give', async () => {
    expect(await audit.page({ to: new Date(T0), limit: 10 })).toEqual({
      entries: [],
      next: undefined,
    });
    await expect(audit.page({ limit: 1, cursor: 'not-a-cursor' })).rejects.toMatchObject({
      code: ErrorCodes.VALIDATION,
      details: { issues: [{ path: 'cursor', message: expect.any(String) }] },
    });
  });

  it('records an entry with its time, and reads it back first', async () => {
    await audit.record({ keyId: 'key_x', action: 'key.create', outcome: 'ok' });
    const [entry] = await audit.recent(1);
    expect(entry).toMatchObject({ keyId: 'key_x', action: 'key.create', details: {} });
    expect(Date.now() - Date.parse(entry?.at ?? '')).toBeLessThan(60_000);
  });
});
