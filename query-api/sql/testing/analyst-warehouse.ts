/**
 * A migrated chDB warehouse in a temp directory with a few rows in it, for
 * the SQL endpoint's tests. chDB binds one data directory per process, so a
 * test file opens one directory; a second handle on the same directory (with
 * other analyst limits) shares its tables.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { migrate } from '../../../warehouse/migrations.js';
import { CHECKPOINTS } from '../../../warehouse/tables.js';
import {
  type AnalystLimits,
  clickhouseTime,
  openWarehouse,
  type Warehouse,
} from '../../../warehouse/warehouse.js';

/** The database the seeded tables are in. */
export const DATABASE = 'tandem_sql';

/** What the seeded warehouse holds, for tests to check that nothing changed. */
export interface Footprint {
  readonly tables: string[];
  readonly events: number;
  readonly checkpoints: number;
}

/** The seeded warehouse, and more handles on it. */
export interface AnalystWarehouse {
  readonly warehouse: Warehouse;
  /** Another handle on the same tables, its analyst client with `limits`. */
  withLimits(limits: Partial<AnalystLimits>): Promise<Warehouse>;
  footprint(): Promise<Footprint>;
  close(): Promise<void>;
}

const at = (minute: number) => clickhouseTime(Date.UTC(2026, 0, 5, 10, minute));

/** Opens, migrates and seeds: two profiles' events online and in store, their orders, identity and a checkpoint. */
export async function openAnalystWarehouse(): Promise<AnalystWarehouse> {
  const dir = await mkdtemp(join(tmpdir(), 'tandem-sql-'));
  const open = (limits: Partial<AnalystLimits> = {}) =>
    openWarehouse({
      target: { kind: 'chdb', path: dir },
      database: DATABASE,
      analystLimits: limits,
    });
  const warehouse = await open();
  const handles = [warehouse];
  await migrate(warehouse);
  const insert = (table: string, values: Record<string, unknown>[]) =>
    warehouse.client.insert({ table: warehouse.table(table), values, format: 'JSONEachRow' });
  const event = (n: number, fields: Record<string, unknown>) => ({
    event_id: `00000000-0000-4000-8000-00000000000${n}`,
    occurred_at: at(n),
    received_at: at(n),
    position: n,
    ...fields,
  });
  await insert('events', [
    event(1, {
      channel: 'online',
      event_name: 'Product Viewed',
      product_ids: ['SKU-1'],
      identifier_type: 'user_id',
      identifier_hash: 'h1',
    }),
    event(2, {
      channel: 'offline',
      event_name: 'Order Completed',
      order_id: 'r1',
      revenue: 12.5,
      store_id: 'store-1',
      identifier_type: 'member_id',
      identifier_hash: 'h2',
    }),
    event(3, {
      channel: 'online',
      event_name: 'Order Completed',
      order_id: 'o1',
      revenue: 20,
      identifier_type: 'user_id',
      identifier_hash: 'h1',
    }),
    event(4, {
      channel: 'online',
      event_name: 'Page Viewed',
      page_name: 'a;b',
      identifier_type: 'anonymous_id',
      identifier_hash: 'h3',
    }),
  ]);
  await insert('orders', [
    event(2, { order_id: 'r1', channel: 'offline', revenue: 12.5, identifier_hash: 'h2' }),
    event(3, { order_id: 'o1', channel: 'online', revenue: 20, identifier_hash: 'h1' }),
  ]);
  await insert('identity', [
    { identifier_hash: 'h1', identifier_type: 'user_id', profile_id: 'prf_a', seq: 1 },
    { identifier_hash: 'h2', identifier_type: 'member_id', profile_id: 'prf_a', seq: 2 },
    { identifier_hash: 'h3', identifier_type: 'anonymous_id', profile_id: 'prf_b', seq: 3 },
  ]);
  await insert('profiles', [
    { profile_id: 'prf_a', status: 'active', created_reason: 'first_seen', seq: 1 },
    { profile_id: 'prf_b', status: 'active', created_reason: 'first_seen', seq: 3 },
  ]);
  await insert(CHECKPOINTS.name, [
    { projector: 'main', commit: 4, prepare: 4, events: 4, updated_at: `${at(4)}000` },
  ]);
  const count = async (query: string) =>
    (
      await (await warehouse.client.query({ query, format: 'JSONEachRow' })).json<{ n: number }>()
    )[0]?.n ?? -1;
  return {
    warehouse,
    async withLimits(limits) {
      const handle = await open(limits);
      handles.push(handle);
      return handle;
    },
    async footprint() {
      const tables = await warehouse.client.query({
        query: `SELECT name FROM system.tables WHERE database = '${DATABASE}' ORDER BY name`,
        format: 'JSONEachRow',
      });
      return {
        tables: (await tables.json<{ name: string }>()).map((row) => row.name),
        events: await count(`SELECT count() AS n FROM ${warehouse.table('events')}`),
        checkpoints: await count(`SELECT count() AS n FROM ${warehouse.table(CHECKPOINTS.name)}`),
      };
    },
    async close() {
      await Promise.all(handles.map((handle) => handle.close()));
      await rm(dir, { recursive: true, force: true });
    },
  };
}
