import { afterAll, afterEach, beforeEach, expect, it } from 'vitest';
import { appliedVersions, MIGRATIONS, migrate } from './migrations.js';
import { RECOMMENDATION_TABLES } from './recommendation-tables.js';
import {
  CHECKPOINTS,
  columnNames,
  PROJECTED_TABLES,
  projectedTable,
  SEGMENT_TABLES,
} from './tables.js';
import { describeOnTargets, warehouseTargets } from './testing/targets.js';
import { VIEWS } from './views.js';
import { EncodedRows, type Warehouse } from './warehouse.js';

const targets = await warehouseTargets();
afterAll(() => Promise.all(targets.map((target) => target.dispose())));

describeOnTargets('warehouse', targets, (target) => {
  let warehouse: Warehouse;
  beforeEach(async () => {
    warehouse = await target.open();
  });
  afterEach(async () => {
    await warehouse.client.command({ query: `DROP DATABASE IF EXISTS ${warehouse.database}` });
    await warehouse.close();
  });

  async function rows<T>(query: string, client = warehouse.client): Promise<T[]> {
    return (await client.query({ query, format: 'JSONEachRow' })).json<T>();
  }

  it('creates every table with the columns, types and comments of its spec', async () => {
    const report = await migrate(warehouse);
    expect(report.applied).toEqual(MIGRATIONS.map((migration) => migration.version));
    await expectTablesOfSpecs();
  });

  /** Every table and view has the columns, types and comments of its spec, in its order. */
  async function expectTablesOfSpecs() {
    const columns = await rows<{ table: string; name: string; type: string; comment: string }>(
      `SELECT table, name, type, comment FROM system.columns
       WHERE database = '${warehouse.database}' ORDER BY table, position`,
    );
    for (const spec of [
      ...PROJECTED_TABLES,
      ...SEGMENT_TABLES,
      ...RECOMMENDATION_TABLES,
      CHECKPOINTS,
    ]) {
      const actual = columns
        .filter((column) => column.table === spec.name)
        .map(({ name, type, comment }) => ({ name, type, comment }));
      const expected = spec.columns.map(({ name, type, comment }) => ({
        name,
        type: type.replaceAll(/,(?! )/g, ', '),
        comment,
      }));
      expect(actual, spec.name).toEqual(expected);
    }
    for (const view of VIEWS) {
      const actual = columns.filter((column) => column.table === view.name).map((c) => c.name);
      expect(actual, view.name).toEqual(Object.keys(view.columns));
    }
  }

  it('applies each migration once and records it', async () => {
    await migrate(warehouse);
    const again = await migrate(warehouse);
    expect(again.applied).toEqual([]);
    expect(again.current).toBe(Math.max(...MIGRATIONS.map((migration) => migration.version)));
    expect(await appliedVersions(warehouse)).toEqual(MIGRATIONS.map((m) => m.version));
  });

  it('answers the views on empty tables', async () => {
    await migrate(warehouse);
    for (const view of VIEWS)
      expect(await rows(`SELECT * FROM ${warehouse.table(view.name)}`)).toEqual([]);
  });

  it('gives analysts a read-only connection and keeps the writer writable', async () => {
    await migrate(warehouse);
    const stores = warehouse.table('stores');
    expect(await rows(`SELECT count() AS n FROM ${stores}`, warehouse.analyst)).toEqual([{ n: 0 }]);
    await expect(
      warehouse.analyst.command({ query: `INSERT INTO ${stores} (store_id) VALUES ('s1')` }),
    ).rejects.toThrow(/readonly/i);
    await expect(
      rows("SELECT * FROM file('/etc/passwd', 'LineAsString')", warehouse.analyst),
    ).rejects.toThrow(/readonly/i);
    await expect(warehouse.analyst.command({ query: `DROP TABLE ${stores}` })).rejects.toThrow(
      /readonly/i,
    );
    await warehouse.client.insert({
      table: stores,
      values: [{ store_id: 's1', name: 'One', position: 1 }],
      format: 'JSONEachRow',
    });
    expect(await rows(`SELECT store_id FROM ${stores}`, warehouse.analyst)).toEqual([
      { store_id: 's1' },
    ]);
  });

  it('gives the rows of a warehouse made before version 7 the keys and channels a new one has', async () => {
    await migrate(
      warehouse,
      MIGRATIONS.filter((migration) => migration.version < 7),
    );
    const event = (id: string, channel: string, occurredAt: string, receivedAt: string) => ({
      event_id: id,
      occurred_at: occurredAt,
      received_at: receivedAt,
      channel,
      identifier_hash: 'h1',
      position: 1,
    });
    await warehouse.client.insert({
      table: warehouse.table('events'),
      values: [
        event(
          '00000000-0000-4000-8000-000000000001',
          'online',
          '2026-03-01 10:00:00.000',
          '2026-03-01 10:00:01.000',
        ),
        // Happened earlier, but reached the log later: known from when it was received.
        event(
          '00000000-0000-4000-8000-000000000002',
          'online',
          '2026-02-01 10:00:00.000',
          '2026-03-05 10:00:00.000',
        ),
        event(
          '00000000-0000-4000-8000-000000000003',
          'offline',
          '2026-03-02 10:00:00.000',
          '2026-03-02 10:00:00.000',
        ),
      ],
      format: 'JSONEachRow',
    });
    await warehouse.client.insert({
      table: warehouse.table('identity'),
      values: [{ identifier_hash: 'h1', identifier_type: 'user_id', profile_id: 'prf_1', seq: 1 }],
      format: 'JSONEachRow',
    });
    expect((await migrate(warehouse)).applied).toEqual([7]);
    await expectTablesOfSpecs();
    // The join segments make: from an event's key to its profile, and the channels it was seen on.
    expect(
      await rows(
        `SELECT i.profile_id AS profile_id, c.channel AS channel, toString(c.known) AS known
         FROM (SELECT identifier_key, channel, min(greatest(occurred_at, received_at)) AS known
               FROM ${warehouse.table('events')} GROUP BY identifier_key, channel SETTINGS final = 0) AS c
         INNER JOIN ${warehouse.table('identity')} AS i ON i.identifier_key = c.identifier_key
         ORDER BY channel`,
      ),
    ).toEqual([
      { profile_id: 'prf_1', channel: 'offline', known: '2026-03-02 10:00:00.000' },
      { profile_id: 'prf_1', channel: 'online', known: '2026-03-01 10:00:01.000' },
    ]);
  });

  it('fills the product interactions from the events a warehouse already holds when it upgrades', async () => {
    await migrate(
      warehouse,
      MIGRATIONS.filter((migration) => migration.version < 6),
    );
    // As a warehouse made before the table existed: migration 1 creates it now.
    await warehouse.client.command({
      query: `DROP TABLE ${warehouse.table('product_interactions')}`,
    });
    const event = (id: string, eventName: string, productIds: string[], position: number) => ({
      event_id: id,
      occurred_at: '2026-03-01 10:00:00.000',
      channel: 'online',
      event_name: eventName,
      product_ids: productIds,
      identifier_hash: 'h1',
      position,
    });
    await warehouse.client.insert({
      table: warehouse.table('events'),
      values: [
        event('00000000-0000-4000-8000-000000000001', 'Product Viewed', ['SKU-1'], 1),
        event('00000000-0000-4000-8000-000000000002', 'Page Viewed', [], 2),
        event('00000000-0000-4000-8000-000000000003', 'Order Completed', ['SKU-1', 'SKU-2'], 3),
      ],
      format: 'JSONEachRow',
    });
    expect((await migrate(warehouse)).applied).toEqual([6, 7]);
    expect(
      await rows(
        `SELECT identifier_hash, event_name, product_ids, position
         FROM ${warehouse.table('product_interactions')} ORDER BY position`,
      ),
    ).toEqual([
      {
        identifier_hash: 'h1',
        event_name: 'Product Viewed',
        product_ids: ['SKU-1'],
        position: 1,
      },
      {
        identifier_hash: 'h1',
        event_name: 'Order Completed',
        product_ids: ['SKU-1', 'SKU-2'],
        position: 3,
      },
    ]);
  });

  it('writes encoded rows as they were: text of any kind, arrays, decimals, defaults for what a row lacks', async () => {
    await migrate(warehouse);
    const stores = warehouse.table('stores');
    const columns = columnNames(projectedTable('stores'));
    const batch = () => {
      const rows = new EncodedRows(stores, columns);
      rows.add({
        store_id: 's1',
        name: 'Quote " backslash \\ tab \t newline \n 北京店',
        city: 'Shanghai',
        lat: 31.2304,
        lon: 121.4737,
        categories: ['shoes', "women's"],
        position: 1,
      });
      // No name, district, time zone or categories: each takes its column's default.
      rows.add({ store_id: 's2', city: 'Beijing', lat: 39.9, lon: 116.4, position: 2 });
      return rows;
    };
    // Written twice, as a re-delivered batch is: the reads see each row once.
    await warehouse.writer.insert(batch());
    await warehouse.writer.insert(batch());
    expect(
      await rows(
        `SELECT store_id, name, city, district, lat, categories FROM ${stores} ORDER BY store_id`,
      ),
    ).toEqual([
      {
        store_id: 's1',
        name: 'Quote " backslash \\ tab \t newline \n 北京店',
        city: 'Shanghai',
        district: '',
        lat: 31.2304,
        categories: ['shoes', "women's"],
      },
      { store_id: 's2', name: '', city: 'Beijing', district: '', lat: 39.9, categories: [] },
    ]);
  });

  it('keeps the newest version of a row written twice', async () => {
    await migrate(warehouse);
    const stores = warehouse.table('stores');
    const row = { store_id: 's1', name: 'Old', position: 1 };
    await warehouse.client.insert({ table: stores, values: [row, row], format: 'JSONEachRow' });
    await warehouse.client.insert({
      table: stores,
      values: [{ ...row, name: 'New', position: 2 }, row],
      format: 'JSONEachRow',
    });
    expect(await rows(`SELECT name FROM ${stores}`)).toEqual([{ name: 'New' }]);
  });
});
