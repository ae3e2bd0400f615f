import { afterAll, beforeAll, expect, it } from 'vitest';
import { migrate } from '../../warehouse/migrations.js';
import { describeOnTargets, warehouseTargets } from '../../warehouse/testing/targets.js';
import { clickhouseTime, type Warehouse } from '../../warehouse/warehouse.js';
import {
  type ProfileDeps,
  profileIdentifiers,
  readProfile,
  readTimeline,
} from './profile-reads.js';

/**
 * The reads go without FINAL, so they must see what FINAL would before
 * ClickHouse merges any parts: each insert below is its own part, as a
 * merge, a split and a re-delivered projector batch leave them. On every
 * warehouse target.
 */
const hash = (letter: string) => letter.repeat(43);
const at = (minute: number) => clickhouseTime(Date.UTC(2026, 0, 5, 10, minute));
const targets = await warehouseTargets();
afterAll(() => Promise.all(targets.map((target) => target.dispose())));

describeOnTargets('profile reads before parts merge', targets, (target) => {
  let warehouse: Warehouse;
  let deps: ProfileDeps;

  beforeAll(async () => {
    warehouse = await target.open();
    await migrate(warehouse);
    deps = {
      warehouse,
      eventStore: { readStream: () => [][Symbol.iterator]() as never },
      keyStore: { find: async () => undefined },
    };
    const insert = async (table: string, values: Record<string, unknown>[]) => {
      await warehouse.client.insert({
        table: warehouse.table(table),
        values,
        format: 'JSONEachRow',
      });
    };
    const identity = (letter: string, type: string, profile: string, seq: number, deleted = 0) => ({
      identifier_hash: hash(letter),
      identifier_type: type,
      profile_id: profile,
      seq,
      is_deleted: deleted,
    });
    const event = (n: number, letter: string, channel: string, revenue = '0.00') => ({
      event_id: `00000000-0000-4000-8000-00000000000${n}`,
      occurred_at: at(n),
      received_at: at(n),
      channel,
      event_name: revenue === '0.00' ? 'Product Viewed' : 'Order Completed',
      order_id: revenue === '0.00' ? '' : `order-${n}`,
      revenue,
      identifier_hash: hash(letter),
      position: n,
    });
    await insert('profiles', [{ profile_id: 'prf_a', status: 'active', seq: 1 }]);
    await insert('identity', [
      identity('e', 'email', 'prf_a', 1),
      identity('d', 'anonymous_id', 'prf_a', 1),
      identity('t', 'payment_token', 'prf_a', 1),
    ]);
    // An operator split the device off to prf_b; the token was forgotten.
    await insert('identity', [identity('d', 'anonymous_id', 'prf_b', 5)]);
    await insert('identity', [identity('t', 'payment_token', 'prf_a', 6, 1)]);
    await insert('events', [
      event(1, 'e', 'online'),
      event(2, 'e', 'offline', '10.50'),
      event(3, 'd', 'online'),
      event(4, 't', 'offline', '99.00'),
    ]);
    // The projector wrote its last batch again after a crash.
    await insert('events', [event(2, 'e', 'offline', '10.50')]);
    await insert('profile_traits', [
      { profile_id: 'prf_a', trait: 'city', value: '"Lyon"', seq: 2 },
    ]);
    await insert('profile_traits', [
      { profile_id: 'prf_a', trait: 'city', value: '"Paris"', seq: 7 },
    ]);
    const consent = (granted: boolean, seq: number) => ({
      profile_id: 'prf_a',
      purpose: 'marketing_email',
      granted,
      stated_at: at(seq),
      source: 'web',
      seq,
    });
    await insert('consents', [consent(true, 3)]);
    await insert('consents', [consent(false, 8)]);
  });
  afterAll(async () => {
    await warehouse.client.command({ query: `DROP DATABASE IF EXISTS ${warehouse.database}` });
    await warehouse.close();
  });

  it('count only the identifiers the profile holds now, each event once, and the newest traits and consent', async () => {
    expect(await readProfile(deps, 'prf_a')).toEqual({
      profileId: 'prf_a',
      status: 'active',
      identifierCounts: { email: 1 },
      traits: { city: 'Paris' },
      consent: {
        marketing_email: { granted: false, statedAt: '2026-01-05T10:08:00.000Z', source: 'web' },
      },
      activity: {
        events: 2,
        orders: 1,
        revenue: '10.5',
        firstSeenOnline: '2026-01-05T10:01:00.000Z',
        lastSeenOnline: '2026-01-05T10:01:00.000Z',
        firstSeenOffline: '2026-01-05T10:02:00.000Z',
        lastSeenOffline: '2026-01-05T10:02:00.000Z',
      },
    });
    expect(await profileIdentifiers(deps, 'prf_a')).toEqual([{ type: 'email', hash: hash('e') }]);
    expect(await profileIdentifiers(deps, 'prf_b')).toEqual([
      { type: 'anonymous_id', hash: hash('d') },
    ]);
  });

  it('pages the timeline with each event once, and none of an identifier the profile lost', async () => {
    const { entries, next } = await readTimeline(deps, 'prf_a', { limit: 10 });
    expect(entries.map((entry) => entry.eventId)).toEqual([
      '00000000-0000-4000-8000-000000000002',
      '00000000-0000-4000-8000-000000000001',
    ]);
    expect(next).toBeNull();
  });
});
