/**
 * Copies of a projected warehouse, made in SQL, for query benchmarks at a
 * size whose ingest would take hours here: 50 copies of a 20k-shopper chain
 * hold about as many events (20M) and profiles as 1M shoppers. Each copy k
 * gets its own people: profile ids, identifier hashes and order ids take a
 * `-k` suffix and event ids a new UUID, so copies never share a profile or
 * an event. Stores, products and times are shared, so every copy's events
 * fall on the same days as the original's. ClickHouse computes the keys
 * (`identifier_key`, `profile_key`) and the projection as the rows land.
 * The copy returns once ClickHouse has no merge running, so that merging
 * the parts it made does not share the two cores with what is measured.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { selectRows } from '../warehouse/select.js';
import { columnNames, PRODUCTS, PROJECTED_TABLES, STORES } from '../warehouse/tables.js';
import type { Warehouse } from '../warehouse/warehouse.js';

/** The tables of people and what they did; the catalog and the stores are shared. */
const COPIED_TABLES = PROJECTED_TABLES.filter((spec) => spec !== PRODUCTS && spec !== STORES);
/** Text columns naming a person, an identifier or an order; empty stays empty. */
const SUFFIXED = new Set(['profile_id', 'merged_into', 'identifier_hash', 'order_id']);

/** Adds copies 1 … copies − 1 of every person's rows beside the originals; returns the events then held. */
export async function copyWarehouse(warehouse: Warehouse, copies: number): Promise<number> {
  if (!Number.isInteger(copies) || copies < 1)
    throw new RangeError('copies must be a whole number from 1');
  for (const spec of COPIED_TABLES) {
    // Computed columns (the keys) are left to ClickHouse, as the projector leaves them.
    const names = columnNames(spec);
    await warehouse.client.command({
      query: `INSERT INTO ${warehouse.table(spec.name)} (${names.join(', ')})
        SELECT ${names.map(copiedColumn).join(', ')}
        FROM ${warehouse.table(spec.name)} ARRAY JOIN range(1, ${copies}) AS k`,
    });
  }
  await mergesSettled(warehouse);
  const [held] = await selectRows<{ events: number }>(
    warehouse.client,
    `SELECT count() AS events FROM ${warehouse.table('events')}`,
  );
  return Number(held?.events ?? 0);
}

/** The expression that gives copy `k`'s value of `column`. */
function copiedColumn(column: string): string {
  if (column === 'event_id') return 'reinterpretAsUUID(sipHash128(event_id, k)) AS event_id';
  if (column === 'identifiers')
    return "arrayMap(x -> concat(x, '-', toString(k)), identifiers) AS identifiers";
  if (SUFFIXED.has(column))
    return `if(${column} = '', ${column}, concat(${column}, '-', toString(k))) AS ${column}`;
  return column;
}

/** Waits until no merge of the warehouse's tables has run for three polls in a row. */
async function mergesSettled(warehouse: Warehouse): Promise<void> {
  for (let quiet = 0; quiet < 3; ) {
    await sleep(1000);
    const [running] = await selectRows<{ merges: number }>(
      warehouse.client,
      'SELECT count() AS merges FROM system.merges WHERE database = {database:String}',
      { database: warehouse.database },
    );
    quiet = Number(running?.merges ?? 0) === 0 ? quiet + 1 : 0;
  }
}
