import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SegmentCondition } from '../../schemas/segment-definition.js';
import { migrate } from '../../warehouse/migrations.js';
import { describeOnTargets, warehouseTargets } from '../../warehouse/testing/targets.js';
import type { Warehouse } from '../../warehouse/warehouse.js';
import { compileSegment } from './segment-compiler.js';
import { previewSql } from './segment-preview.js';
import { conditionArb } from './testing/condition-arbitraries.js';
import { evaluateSegment, type SegmentDataset } from './testing/evaluate.js';
import {
  addEvent,
  consent,
  DAY,
  datasetArb,
  emptyDataset,
  link,
  loadDataset,
  NOW,
  product,
  profile,
  SAVED,
  trait,
} from './testing/segment-data.js';

/**
 * The compiled SQL, run by ClickHouse on a dataset, selects exactly the
 * profiles the in-memory evaluator (testing/evaluate.ts) selects on the same
 * rows: random trees on random datasets, then the cases that matter most
 * written out.
 */
const targets = await warehouseTargets();
afterAll(async () => {
  await Promise.all(targets.map((target) => target.dispose()));
});

const lookup = (id: string) => SAVED[id];
/** Holds for every active profile. */
const EVERYONE: SegmentCondition = { type: 'event', filter: {}, count: { op: 'at_least', n: 0 } };
const asOfArb = fc.option(
  fc.integer({ min: 0, max: 20 }).map((halfDays) => new Date(NOW.getTime() - (halfDays * DAY) / 2)),
  { nil: undefined },
);

describeOnTargets(compileSegment.name, targets, (target) => {
  let warehouse: Warehouse;
  beforeAll(async () => {
    warehouse = await target.open();
    await migrate(warehouse);
  });
  afterAll(async () => {
    await warehouse.client.command({ query: `DROP DATABASE IF EXISTS ${warehouse.database}` });
    await warehouse.close();
  });

  async function members(condition: SegmentCondition, asOf?: Date): Promise<string[]> {
    const { sql, params } = compileSegment(SegmentCondition.parse(condition), {
      database: warehouse.database,
      now: NOW,
      asOf,
      lookup,
    });
    const result = await warehouse.client.query({
      query: sql,
      query_params: params,
      format: 'JSONEachRow',
    });
    return (await result.json<{ profile_id: string }>()).map((row) => row.profile_id).sort();
  }
  const expected = (condition: SegmentCondition, data: SegmentDataset, asOf?: Date) =>
    [...evaluateSegment(condition, data, { now: NOW, asOf, lookup })].sort();

  it('selects what the in-memory evaluator selects, for random trees on random datasets', async () => {
    const outcomes = { none: 0, some: 0, all: 0 };
    await fc.assert(
      fc.asyncProperty(
        datasetArb,
        fc.array(conditionArb, { minLength: 4, maxLength: 4 }),
        asOfArb,
        async (data, trees, asOf) => {
          await loadDataset(warehouse, data);
          const active = expected(EVERYONE, data, asOf);
          for (const tree of trees) {
            const want = expected(tree, data, asOf);
            expect(await members(tree, asOf), JSON.stringify(tree)).toEqual(want);
            outcomes[want.length === 0 ? 'none' : want.length === active.length ? 'all' : 'some'] +=
              1;
          }
        },
      ),
      { numRuns: 80 },
    );
    // The property says little if the trees select nobody or everybody.
    console.info('segment property outcomes', outcomes);
    expect(outcomes.some).toBeGreaterThan(0.15 * (outcomes.none + outcomes.some + outcomes.all));
  }, 120_000);

  it('previews the size, the channel split and a sample of the members in one query', async () => {
    await fc.assert(
      fc.asyncProperty(datasetArb, conditionArb, asOfArb, async (data, tree, asOf) => {
        await loadDataset(warehouse, data);
        const compiled = compileSegment(tree, {
          database: warehouse.database,
          now: NOW,
          asOf,
          lookup,
        });
        const { sql, params } = previewSql(compiled, {
          database: warehouse.database,
          asOf,
          sampleSize: 3,
        });
        const result = await warehouse.client.query({
          query: sql,
          query_params: params,
          format: 'JSONEachRow',
        });
        const [row] = await result.json<Record<string, unknown>>();
        const want = expected(tree, data, asOf);
        const on = (channel: 'online' | 'offline') =>
          new Set(expected({ type: 'event', filter: { channel } }, data, asOf));
        const online = on('online');
        const offline = on('offline');
        expect(row).toMatchObject({
          size: want.length,
          online_only: want.filter((p) => online.has(p) && !offline.has(p)).length,
          offline_only: want.filter((p) => offline.has(p) && !online.has(p)).length,
          in_both: want.filter((p) => online.has(p) && offline.has(p)).length,
          neither: want.filter((p) => !online.has(p) && !offline.has(p)).length,
        });
        const sample = row?.sample as string[];
        expect(sample.length).toBe(Math.min(3, want.length));
        for (const id of sample) expect(want).toContain(id);
      }),
      { numRuns: 25 },
    );
  }, 60_000);

  describe('written-out cases', () => {
    const t0 = NOW.getTime() - 20 * DAY;
    /** Five active profiles a–e, each with its own identifier ha–he. */
    function people(): SegmentDataset {
      const data = emptyDataset();
      for (const id of ['a', 'b', 'c', 'd', 'e']) {
        profile(data, `prf_${id}`);
        link(data, `h${id}`, `prf_${id}`);
      }
      return data;
    }
    async function check(
      data: SegmentDataset,
      condition: SegmentCondition,
      want: string[],
      asOf?: Date,
    ) {
      await loadDataset(warehouse, data);
      expect(expected(condition, data, asOf), 'evaluator').toEqual(want);
      expect(await members(condition, asOf), 'SQL').toEqual(want);
    }

    it('answers a did-not alone, including profiles with no events at all', async () => {
      const data = people();
      addEvent(data, {
        at: t0,
        hash: 'ha',
        channel: 'offline',
        name: 'Order Completed',
        skus: ['SKU-1'],
      });
      addEvent(data, { at: t0, hash: 'hb', channel: 'online', name: 'Product Viewed' });
      profile(data, 'prf_e', 'merged');
      const didNotBuy: SegmentCondition = {
        type: 'event',
        filter: { eventName: 'Order Completed' },
        count: { op: 'exactly', n: 0 },
      };
      await check(data, didNotBuy, ['prf_b', 'prf_c', 'prf_d']);
      for (const same of [
        { ...didNotBuy, count: { op: 'at_most', n: 0 } },
        { type: 'not', condition: { ...didNotBuy, count: { op: 'at_least', n: 1 } } },
      ] as SegmentCondition[])
        await check(data, same, ['prf_b', 'prf_c', 'prf_d']);
    });

    it('finds viewed online, then bought the same category in a store within 7 days', async () => {
      const data = people();
      product(data, 'SKU-1', 'shoes');
      product(data, 'SKU-2', 'bags');
      const view = { channel: 'online', name: 'Product Viewed', categories: ['shoes'] } as const;
      const buy = { channel: 'offline', name: 'Order Completed', store: 's1' } as const;
      addEvent(data, { ...view, at: t0, hash: 'ha' });
      addEvent(data, { ...buy, at: t0 + 3 * DAY, hash: 'ha', skus: ['SKU-1'] }); // a: yes
      addEvent(data, { ...view, at: t0, hash: 'hb' });
      addEvent(data, { ...buy, at: t0 + 3 * DAY, hash: 'hb', skus: ['SKU-2'] }); // b: other category
      addEvent(data, { ...view, at: t0, hash: 'hc' });
      addEvent(data, { ...buy, at: t0 + 7 * DAY + 1, hash: 'hc', skus: ['SKU-1'] }); // c: too late
      addEvent(data, { ...buy, at: t0, hash: 'hd', skus: ['SKU-1'] });
      addEvent(data, { ...view, at: t0 + DAY, hash: 'hd' }); // d: wrong order
      link(data, 'he-card', 'prf_e');
      addEvent(data, { ...view, at: t0, hash: 'he' });
      addEvent(data, { ...buy, at: t0 + 7 * DAY, hash: 'he-card', skus: ['SKU-2', 'SKU-1'] }); // e: through its card
      const o2o: SegmentCondition = {
        type: 'sequence',
        first: { channel: 'online', eventName: 'Product Viewed' },
        // biome-ignore lint/suspicious/noThenProperty: the sequence step the schema names `then`
        then: { channel: 'offline', eventName: 'Order Completed' },
        withinDays: 7,
        sameCategory: true,
      };
      await check(data, o2o, ['prf_a', 'prf_e']);
      await check(data, { ...o2o, sameCategory: false }, ['prf_a', 'prf_b', 'prf_e']);
    });

    it('nests not and or', async () => {
      const data = people();
      trait(data, 'prf_a', 'tier', 'gold');
      trait(data, 'prf_b', 'tier', 'silver');
      consent(data, 'prf_b', 'marketing_email', true, t0);
      consent(data, 'prf_c', 'marketing_email', true, t0);
      consent(data, 'prf_c', 'marketing_email', false, t0 + DAY);
      consent(data, 'prf_a', 'marketing_email', true, t0);
      const condition: SegmentCondition = {
        type: 'not',
        condition: {
          type: 'or',
          conditions: [
            { type: 'trait', trait: 'tier', op: '=', value: 'gold' },
            {
              type: 'not',
              condition: { type: 'consent', purpose: 'marketing_email', granted: true },
            },
          ],
        },
      };
      await check(data, condition, ['prf_b']);
      await check(data, condition, ['prf_b', 'prf_c'], new Date(t0 + DAY / 2));
    });

    it('answers as of a past time from what the log held then', async () => {
      const data = people();
      addEvent(data, { at: t0, hash: 'ha', channel: 'online', name: 'Product Viewed' });
      addEvent(data, {
        at: t0,
        received: t0 + 2 * DAY,
        hash: 'hb',
        channel: 'online',
        name: 'Product Viewed',
      });
      addEvent(data, { at: t0 + 2 * DAY, hash: 'hc', channel: 'online', name: 'Product Viewed' });
      const viewed: SegmentCondition = {
        type: 'event',
        filter: { eventName: 'Product Viewed' },
        window: { lastDays: 1 },
      };
      await check(data, viewed, ['prf_a'], new Date(t0 + DAY));
      await check(
        data,
        { ...viewed, window: { lastDays: 2 } },
        ['prf_a', 'prf_b', 'prf_c'],
        new Date(t0 + 2 * DAY),
      );
      await check(data, viewed, []);
    });
  });
});
