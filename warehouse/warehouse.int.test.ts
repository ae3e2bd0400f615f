import { afterAll, afterEach, beforeEach, expect, it } from 'vitest';
import { appliedVersions, MIGRATIONS, migrate } from './migrations.js';
import { RECOMMENDATION_TABLES } from './recommendation-tables.js';
import { CHECKPOINTS, PROJECTED_TABLES, SEGMENT_TABLES } from './tables.js';
import { describeOnTargets, warehouseTargets } from './testing/targets.js';
import { VIEWS } from './views.js';
import type { Warehouse } from './warehouse.js';

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
  });

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
