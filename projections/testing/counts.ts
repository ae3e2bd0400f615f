/**
 * What the warehouse should hold for a generated dataset, from the
 * generator's own manifest, and what it does hold: counts per channel of
 * events, orders and order lines, revenue in cents, and the catalog's
 * products and stores.
 */
import type { Manifest } from '../../fixtures/generate.js';
import type { Warehouse } from '../../warehouse/warehouse.js';

export interface ChannelCounts {
  readonly online: number;
  readonly offline: number;
}

export interface WarehouseCounts {
  readonly events: ChannelCounts;
  readonly orders: ChannelCounts;
  readonly lines: ChannelCounts;
  readonly revenueCents: ChannelCounts;
  readonly products: number;
  readonly stores: number;
}

/** The counts a dataset's files promise: calls, receipts and the catalog from the manifest, online lines from the orders. */
export async function expectedSampleCounts(
  files: ReadonlyMap<string, Buffer>,
): Promise<WarehouseCounts> {
  const manifest = JSON.parse(String(files.get('manifest.json'))) as Manifest;
  const { counts } = manifest;
  const calls = Object.values(counts.calls).reduce((sum, n) => sum + n, 0);
  let onlineLines = 0;
  for (const line of String(files.get('clickstream.ndjson')).trimEnd().split('\n')) {
    for (const call of (JSON.parse(line) as { batch: Record<string, unknown>[] }).batch) {
      const properties = call.properties as { products?: unknown[] } | undefined;
      if (call.event === 'Order Completed') onlineLines += properties?.products?.length ?? 0;
    }
  }
  return {
    events: { online: calls, offline: counts.receipts },
    orders: { online: counts.orders, offline: counts.receipts },
    lines: { online: onlineLines, offline: counts.receiptLines },
    revenueCents: { online: counts.onlineRevenueCents, offline: counts.offlineRevenueCents },
    products: counts.products,
    stores: counts.stores,
  };
}

/** The same counts, as the warehouse's tables hold them now. */
export async function warehouseCounts(warehouse: Warehouse): Promise<WarehouseCounts> {
  const byChannel = async (query: string): Promise<ChannelCounts> => {
    const result = await warehouse.client.query({ query, format: 'JSONEachRow' });
    const rows = await result.json<{ channel: string; n: number | string }>();
    const of = (channel: string) => Number(rows.find((row) => row.channel === channel)?.n ?? 0);
    return { online: of('online'), offline: of('offline') };
  };
  const table = warehouse.table.bind(warehouse);
  const count = async (name: string): Promise<number> => {
    const result = await warehouse.client.query({
      query: `SELECT count() AS n FROM ${table(name)}`,
      format: 'JSONEachRow',
    });
    return Number((await result.json<{ n: number | string }>())[0]?.n ?? 0);
  };
  return {
    events: await byChannel(
      `SELECT channel, count() AS n FROM ${table('events')} GROUP BY channel`,
    ),
    orders: await byChannel(
      `SELECT channel, count() AS n FROM ${table('orders')} GROUP BY channel`,
    ),
    lines: await byChannel(
      `SELECT channel, count() AS n FROM ${table('order_lines')} GROUP BY channel`,
    ),
    revenueCents: await byChannel(
      `SELECT channel, toInt64(sum(revenue) * 100) AS n FROM ${table('orders')} GROUP BY channel`,
    ),
    products: await count('products'),
    stores: await count('stores'),
  };
}
