import { afterAll, beforeAll, expect, it } from 'vitest';
import type { SegmentCondition } from '../../schemas/segment-definition.js';
import { migrate } from '../../warehouse/migrations.js';
import { selectRows } from '../../warehouse/select.js';
import { describeOnTargets, warehouseTargets } from '../../warehouse/testing/targets.js';
import { clickhouseTime, type Warehouse } from '../../warehouse/warehouse.js';
import { compileSegment } from './segment-compiler.js';
import { previewSql } from './segment-preview.js';

/**
 * Sequences, counts and a preview's channel split read their events without
 * FINAL (a copy of an event changes neither whether one exists, nor how many
 * distinct ones there are, nor the first time one was known);
 * the tables around them must still answer with their newest rows. Each
 * insert below is its own part, as a re-delivered batch, a split and a
 * catalog update leave them before ClickHouse merges. On every warehouse
 * target: a server must scope the setting the same way.
 */
const hash = (letter: string) => letter.repeat(43);
const day = (n: number) => clickhouseTime(Date.UTC(2026, 2, n, 12));
const targets = await warehouseTargets();
afterAll(() => Promise.all(targets.map((target) => target.dispose())));

describeOnTargets('segment conditions before parts merge', targets, (target) => {
  let warehouse: Warehouse;

  beforeAll(async () => {
    warehouse = await target.open();
    await migrate(warehouse);
    const insert = async (table: string, values: Record<string, unknown>[]) => {
      await warehouse.client.insert({
        table: warehouse.table(table),
        values,
        format: 'JSONEachRow',
      });
    };
    // The bag was filed under shoes first, then under bags; the older upsert's
    // row landed last (a rebuild, say): only its version says it is older.
    await insert('products', [{ sku: 'SKU-BAG', category: 'bags', position: 2 }]);
    await insert('products', [{ sku: 'SKU-BAG', category: 'shoes', position: 1 }]);
    await insert(
      'profiles',
      // prf_d holds no identifier yet (a profile made of an import's traits, say).
      ['prf_a', 'prf_b', 'prf_c', 'prf_d'].map((id) => ({
        profile_id: id,
        status: 'active',
        seq: 1,
      })),
    );
    const identity = (letter: string, profile: string, seq: number) => ({
      identifier_hash: hash(letter),
      identifier_type: 'anonymous_id',
      profile_id: profile,
      seq,
    });
    await insert('identity', [identity('a', 'prf_a', 1), identity('b', 'prf_a', 1)]);
    await insert('identity', [identity('c', 'prf_c', 1)]);
    // An operator split device b off to prf_b.
    await insert('identity', [identity('b', 'prf_b', 5)]);
    let position = 0;
    const event = (letter: string, at: string, channel: 'online' | 'offline') => ({
      event_id: `00000000-0000-4000-8000-0000000000${String(++position).padStart(2, '0')}`,
      occurred_at: at,
      received_at: at,
      channel,
      event_name: channel === 'online' ? 'Product Viewed' : 'Order Completed',
      // The views are of the bags category page; the receipts name the sku alone.
      product_ids: channel === 'online' ? [] : ['SKU-BAG'],
      categories: channel === 'online' ? ['bags'] : [],
      identifier_hash: hash(letter),
      position,
    });
    const views = [event('b', day(2), 'online'), event('c', day(2), 'online')];
    await insert('events', [
      ...views,
      event('a', day(3), 'offline'),
      event('c', day(4), 'offline'),
    ]);
    // The projector wrote a batch again after a crash.
    await insert('events', views);
  });
  afterAll(async () => {
    await warehouse.client.command({ query: `DROP DATABASE IF EXISTS ${warehouse.database}` });
    await warehouse.close();
  });

  const members = async (condition: SegmentCondition) => {
    const { sql, params } = compileSegment(condition, {
      database: warehouse.database,
      now: new Date(Date.UTC(2026, 2, 10)),
    });
    return selectRows(warehouse.client, `${sql} ORDER BY profile_id`, params);
  };

  it('counts each event once, for the profile its identifier belongs to now', async () => {
    const views = { eventName: 'Product Viewed', channel: 'online' } as const;
    // prf_c's view was written twice; device b's view is prf_b's since the split.
    expect(
      await members({ type: 'event', filter: views, count: { op: 'at_least', n: 2 } }),
    ).toEqual([]);
    expect(await members({ type: 'event', filter: views, count: { op: 'exactly', n: 1 } })).toEqual(
      [{ profile_id: 'prf_b' }, { profile_id: 'prf_c' }],
    );
    expect(await members({ type: 'event', filter: views, count: { op: 'at_most', n: 1 } })).toEqual(
      [
        { profile_id: 'prf_a' },
        { profile_id: 'prf_b' },
        { profile_id: 'prf_c' },
        { profile_id: 'prf_d' },
      ],
    );
  });

  it('finds who did and who did not, for the profile each identifier belongs to now', async () => {
    const views = { eventName: 'Product Viewed', channel: 'online' } as const;
    // Whether a view exists: prf_a's old row for device b must not answer.
    expect(await members({ type: 'event', filter: views })).toEqual([
      { profile_id: 'prf_b' },
      { profile_id: 'prf_c' },
    ]);
    expect(await members({ type: 'event', filter: views, count: { op: 'exactly', n: 0 } })).toEqual(
      [{ profile_id: 'prf_a' }, { profile_id: 'prf_d' }],
    );
  });

  it('splits a preview by the channels of the identifiers each member holds now', async () => {
    // The channel split reads the projection of `events` without FINAL; identity is current.
    const compiled = compileSegment(
      { type: 'trait', trait: 'member_tier', op: 'not_exists' },
      { database: warehouse.database, now: new Date(Date.UTC(2026, 2, 10)) },
    );
    const { sql, params } = previewSql(compiled, { database: warehouse.database, sampleSize: 0 });
    // prf_a kept device a (a receipt) and lost device b (a view) to prf_b; prf_c did both;
    // prf_d, holding no identifier, is a member seen on neither channel.
    expect(await selectRows(warehouse.client, sql, params)).toEqual([
      { size: 4, online_only: 1, offline_only: 1, in_both: 1, neither: 1, sample: [] },
    ]);
  });

  it('finds who viewed online then bought the same category in a store, by current identity and catalog', async () => {
    const condition: SegmentCondition = {
      type: 'sequence',
      first: { eventName: 'Product Viewed', channel: 'online' },
      // biome-ignore lint/suspicious/noThenProperty: the sequence step the schema names `then`
      then: { eventName: 'Order Completed', channel: 'offline' },
      withinDays: 7,
      sameCategory: true,
    };
    // prf_a bought, but the view was device b's, which is prf_b's now: no one but prf_c.
    expect(await members(condition)).toEqual([{ profile_id: 'prf_c' }]);
  });
});
