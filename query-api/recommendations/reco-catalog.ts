/**
 * What a recommendation model answers without reading anyone's data — the
 * products' names and categories, the stores and what they sell, the
 * popularity lists — read once per model and kept in memory.
 */
import { selectRows } from '../../warehouse/select.js';
import type { Warehouse } from '../../warehouse/warehouse.js';
import { type CommittedModel, readNewestModel } from './reco-model.js';

/** How long the newest model is taken as the newest before it is read again. */
const MODEL_CHECKED_EVERY_MS = 1_000;

/**
 * The newest committed model, read at most once a second: a model trained
 * by another process is served within a second of its commit (the one
 * before it is kept, so a request still on it finds its data), and `forget`
 * makes one trained here served at once. Nothing is kept while there is none.
 */
export function newestModelCache(warehouse: Warehouse) {
  let cached: { readAt: number; model: Promise<CommittedModel> } | undefined;
  const newest = (): Promise<CommittedModel> => {
    const now = performance.now();
    if (!cached || now - cached.readAt > MODEL_CHECKED_EVERY_MS) {
      const model = readNewestModel(warehouse);
      cached = { readAt: now, model };
      model.catch(() => {
        if (cached?.model === model) cached = undefined;
      });
    }
    return cached.model;
  };
  return Object.assign(newest, {
    forget: () => {
      cached = undefined;
    },
  });
}

/** How many items of each popularity list are kept in memory: enough to fill a list among what a store sells. */
const POPULAR_KEPT = 500;

/** What a model answers without reading anyone's data: names and categories, stores, popularity lists. */
export interface ModelCatalog {
  readonly products: ReadonlyMap<string, { readonly name: string; readonly category: string }>;
  readonly stores: ReadonlyMap<
    string,
    { readonly city: string; readonly sells: ReadonlySet<string> }
  >;
  /** Best first, by `store:ID`, `city:NAME`, `all` and `category:NAME`. */
  readonly popular: ReadonlyMap<
    string,
    readonly { readonly sku: string; readonly score: number }[]
  >;
  /** An item's share of its category's sales (in the kept part of the category's list). */
  readonly categoryShare: ReadonlyMap<string, number>;
}

/**
 * The catalogue and popularity lists of the newest model, read once per
 * model and kept in memory (a few thousand rows), so a request reads only
 * what is about its profile.
 */
export function catalogCache(warehouse: Warehouse) {
  let cached: { model: number; catalog: Promise<ModelCatalog> } | undefined;
  return (model: number): Promise<ModelCatalog> => {
    if (cached?.model !== model) {
      const catalog = loadCatalog(warehouse, model);
      cached = { model, catalog };
      // A failed load is not kept: the next request tries again.
      catalog.catch(() => {
        if (cached?.catalog === catalog) cached = undefined;
      });
    }
    return cached.catalog;
  };
}

async function loadCatalog(warehouse: Warehouse, model: number): Promise<ModelCatalog> {
  const t = (name: string) => warehouse.table(name);
  const [products, stores, popular] = await Promise.all([
    selectRows<{ sku: string; name: string; category: string }>(
      warehouse.client,
      `SELECT sku, name, category FROM ${t('products')}`,
    ),
    selectRows<{ store_id: string; city: string; categories: string[] }>(
      warehouse.client,
      `SELECT store_id, city, categories FROM ${t('stores')}`,
    ),
    selectRows<{ scope: string; scope_id: string; sku: string; score: number }>(
      warehouse.client,
      `SELECT scope, scope_id, sku, score FROM ${t('reco_popularity')}
       WHERE model = {model:UInt64}
       ORDER BY scope, scope_id, score DESC, sku
       LIMIT {kept:UInt32} BY scope, scope_id`,
      { model, kept: POPULAR_KEPT },
    ),
  ]);
  const lists = new Map<string, { sku: string; score: number }[]>();
  const categoryShare = new Map<string, number>();
  for (const row of popular) {
    const key = row.scope === 'all' ? 'all' : `${row.scope}:${row.scope_id}`;
    const list = lists.get(key) ?? [];
    list.push({ sku: row.sku, score: Number(row.score) });
    lists.set(key, list);
    if (row.scope === 'category') categoryShare.set(row.sku, Number(row.score));
  }
  return {
    products: new Map(products.map((p) => [p.sku, { name: p.name, category: p.category }])),
    stores: new Map(
      stores.map((s) => [s.store_id, { city: s.city, sells: new Set(s.categories) }]),
    ),
    popular: lists,
    categoryShare,
  };
}

/** How many items' neighbour lists are kept for a model before the cache starts over. */
const NEIGHBOURS_KEPT = 200_000;

export interface Neighbour {
  readonly neighbour: string;
  /** Its share of its item's neighbours' similarity (they sum to 1 over the item's kept neighbours). */
  readonly share: number;
}

/**
 * The neighbour lists of the newest model by item, read by the first request
 * that needs them and then kept (a model's lists never change), so a request
 * for items already asked about runs no query. Model data only: pairs of
 * items, nothing about any one profile.
 */
export function neighbourCache(warehouse: Warehouse) {
  let cached = { model: -1, lists: new Map<string, readonly Neighbour[]>() };
  return async (
    model: number,
    skus: readonly string[],
  ): Promise<ReadonlyMap<string, readonly Neighbour[]>> => {
    if (cached.model !== model) cached = { model, lists: new Map() };
    const { lists } = cached;
    const missing = skus.filter((sku) => !lists.has(sku));
    if (missing.length > 0) {
      const found = new Map<string, Neighbour[]>(missing.map((sku) => [sku, []]));
      const rows = await selectRows<{ sku: string; neighbour: string; share: number }>(
        warehouse.client,
        `SELECT sku, neighbour, score / sum(score) OVER (PARTITION BY sku) AS share
         FROM ${warehouse.table('reco_item_neighbours')}
         WHERE model = {model:UInt64} AND sku IN {skus:Array(String)}`,
        { model, skus: missing },
      );
      for (const row of rows)
        found.get(row.sku)?.push({ neighbour: row.neighbour, share: Number(row.share) });
      if (lists.size + found.size > NEIGHBOURS_KEPT) lists.clear();
      for (const [sku, list] of found) lists.set(sku, list);
    }
    return new Map(skus.map((sku) => [sku, lists.get(sku) ?? []]));
  };
}
