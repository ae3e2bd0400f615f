/**
 * Small warehouse datasets for segment tests: row builders shaped as
 * `projections/rows.ts` writes them (receipts carry no categories and no
 * properties; their categories come from the catalog), fast-check
 * arbitraries over a small vocabulary so conditions and rows collide often,
 * and the loading of a dataset into a warehouse.
 */
import fc from 'fast-check';
import type { SegmentDefinition } from '../../../schemas/segment-definition.js';
import { PROJECTED_TABLES } from '../../../warehouse/tables.js';
import { clickhouseTime, type Warehouse } from '../../../warehouse/warehouse.js';
import type { ConsentRow, EventRow, OrderRow, SegmentDataset } from './evaluate.js';

/** A day in milliseconds. */
export const DAY = 86_400_000;
/** The `now` every dataset is built around. */
export const NOW = new Date('2026-03-01T12:00:00.000Z');
/** The vocabulary rows and conditions draw from: small, so they meet often. */
export const PROFILES = ['prf_a', 'prf_b', 'prf_c', 'prf_d', 'prf_e'] as const;
export const HASHES = ['h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'h7', 'h8'] as const;
export const EVENT_NAMES = ['Product Viewed', 'Order Completed', 'Page Viewed'] as const;
export const STORES = ['s1', 's2'] as const;
export const SKUS = ['SKU-1', 'SKU-2', 'SKU-3', 'SKU-4'] as const;
export const CATEGORIES = ['shoes', 'bags', 'hats'] as const;
export const TRAITS = ['city', 'tier', 'age', 'vip'] as const;
export const PURPOSES = ['marketing_email', 'personalization'] as const;
export const STRINGS = ['Paris', 'paris', 'Lyon', 'gold', 'silver', '', 'é', "a'b", '10'] as const;
export const NUMBERS = [-1, 0, 1, 2, 2.5, 10, 30] as const;

/** An empty dataset. */
export const emptyDataset = (): SegmentDataset => ({
  events: [],
  orders: [],
  order_lines: [],
  identity: [],
  profiles: [],
  profile_traits: [],
  consents: [],
  consent_history: [],
  products: [],
});

/** An event as a test describes it; `addEvent` makes its rows. */
export interface EventSpec {
  readonly at: number;
  readonly received?: number;
  readonly hash: string;
  readonly channel: 'online' | 'offline';
  readonly name: string;
  readonly store?: string;
  readonly skus?: readonly string[];
  readonly categories?: readonly string[];
  readonly properties?: Record<string, unknown>;
  readonly revenueCents?: number;
}

/** Adds an event to `data` as the projection writes it, with its order and lines when it is one. */
export function addEvent(data: SegmentDataset, spec: EventSpec): EventRow {
  const i = data.events.length + 1;
  const event_id = `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`;
  const receipt = spec.channel === 'offline' && spec.name === 'Order Completed';
  const isOrder = spec.name === 'Order Completed';
  const revenue = isOrder ? ((spec.revenueCents ?? 0) / 100).toFixed(2) : '0.00';
  const occurred_at = clickhouseTime(spec.at);
  const skus = [...(spec.skus ?? [])];
  const row: EventRow = {
    event_id,
    occurred_at,
    received_at: clickhouseTime(spec.received ?? spec.at),
    channel: spec.channel,
    source_kind: receipt ? 'pos' : 'web',
    source_id: receipt ? 'pos' : 'web-shop',
    store_id: spec.store ?? '',
    type: receipt ? 'pos.receipt' : 'track',
    event_name: spec.name,
    page_name: '',
    page_path: '',
    product_ids: skus,
    categories: spec.channel === 'offline' ? [] : [...(spec.categories ?? [])],
    order_id: isOrder ? `O-${i}` : '',
    revenue,
    currency: isOrder ? 'USD' : '',
    properties: spec.channel === 'offline' ? '{}' : JSON.stringify(spec.properties ?? {}),
    identifier_type: 'user_id',
    identifier_hash: spec.hash,
    identifiers: [`user_id:${spec.hash}`],
    position: i,
  };
  data.events.push(row);
  if (!isOrder) return row;
  const order = {
    event_id,
    order_id: row.order_id,
    occurred_at,
    channel: spec.channel,
    store_id: row.store_id,
  };
  const attribution = { identifier_type: 'user_id', identifier_hash: spec.hash, position: i };
  data.orders.push({
    ...order,
    source_id: row.source_id,
    fulfillment: receipt ? 'in_store' : 'shipping',
    currency: 'USD',
    revenue,
    items: skus.length,
    lines: skus.length,
    ...attribution,
  } satisfies OrderRow);
  skus.forEach((sku, line) => {
    const category = receipt ? '' : (spec.categories?.[0] ?? '');
    data.order_lines.push({
      ...order,
      line: line + 1,
      sku,
      category,
      quantity: 1,
      unit_price: '1.00',
      discount: '0.00',
      amount: '1.00',
      ...attribution,
    });
  });
  return row;
}

let seq = 0;
const nextSeq = () => ++seq;

/** Maps `hash` to `profile` (a new identity version), or forgets it. */
export const link = (data: SegmentDataset, hash: string, profile: string, deleted = false) =>
  data.identity.push({
    identifier_hash: hash,
    identifier_type: 'user_id',
    profile_id: profile,
    seq: nextSeq(),
    is_deleted: deleted ? 1 : 0,
  });
/** A new version of profile `id`. */
export const profile = (data: SegmentDataset, id: string, status: 'active' | 'merged' = 'active') =>
  data.profiles.push({
    profile_id: id,
    status,
    merged_into: '',
    created_reason: 'first_seen',
    seq: nextSeq(),
  });
/** A new version of a trait of profile `id`. */
export const trait = (data: SegmentDataset, id: string, name: string, value: unknown) =>
  data.profile_traits.push({
    profile_id: id,
    trait: name,
    value: JSON.stringify(value),
    seq: nextSeq(),
  });
/** A new version of catalog product `sku`. */
export const product = (data: SegmentDataset, sku: string, category: string) =>
  data.products.push({
    sku,
    name: sku,
    category,
    brand: 'b',
    price: '1.00',
    currency: 'USD',
    position: nextSeq(),
  });
/** A consent statement, as the projection writes it to both consent tables. */
export function consent(
  data: SegmentDataset,
  id: string,
  purpose: string,
  granted: boolean,
  at: number,
) {
  const row: ConsentRow = {
    profile_id: id,
    purpose,
    granted,
    stated_at: clickhouseTime(at),
    source: 'web',
    seq: nextSeq(),
  };
  data.consents.push(row);
  data.consent_history.push(row);
}

/** Empties the projected tables and inserts `data`. */
export async function loadDataset(warehouse: Warehouse, data: SegmentDataset): Promise<void> {
  for (const spec of PROJECTED_TABLES)
    await warehouse.client.command({ query: `TRUNCATE TABLE ${warehouse.table(spec.name)}` });
  for (const [table, rows] of Object.entries(data))
    if (rows.length > 0)
      await warehouse.client.insert({
        table: warehouse.table(table),
        values: rows,
        format: 'JSONEachRow',
      });
}

// ---------------------------------------------------------------------------
// Arbitraries

const pick = <T>(values: readonly T[]) => fc.constantFrom(...values);
/** Times on a quarter-day grid around NOW (so windows and `withinDays` meet their edges), ±1 ms at times. */
export const timeArb = fc
  .tuple(fc.integer({ min: -8, max: 160 }), fc.constantFrom(0, 0, 0, 1, -1))
  .map(([quarters, jitter]) => NOW.getTime() - (quarters * DAY) / 4 + jitter);
const jsonScalar = fc.oneof(pick(STRINGS), pick(NUMBERS), fc.boolean(), fc.constant(null));
const propertiesArb = fc.record(
  {
    price: fc.oneof(pick(NUMBERS), pick(STRINGS)),
    color: pick(STRINGS),
    flag: fc.boolean(),
    meta: fc.record({ tier: jsonScalar }, { requiredKeys: [] }),
    list: fc.constant([1, 'a']),
    nothing: fc.constant(null),
  },
  { requiredKeys: [] },
);
const eventArb = fc.record({
  at: timeArb,
  delay: fc.constantFrom(0, 0, DAY / 4, 2 * DAY),
  channel: fc.constantFrom('online', 'offline') as fc.Arbitrary<'online' | 'offline'>,
  name: pick(EVENT_NAMES),
  store: pick(['', ...STORES]),
  skus: fc.subarray([...SKUS], { maxLength: 2 }),
  categories: fc.subarray([...CATEGORIES], { maxLength: 2 }),
  properties: propertiesArb,
  hash: pick([...HASHES, 'h9']),
  revenueCents: fc.constantFrom(0, 500, 1050, 2000, 12345),
  twice: fc.integer({ min: 0, max: 7 }).map((n) => n === 0),
});

/** A random small dataset: five profiles, nine identifiers, a few dozen facts. */
export const datasetArb = fc
  .record({
    statuses: fc.array(
      fc.array(pick(['active', 'active', 'active', 'merged'] as const), {
        minLength: 1,
        maxLength: 2,
      }),
      { minLength: 5, maxLength: 5 },
    ),
    links: fc.array(
      fc.array(
        fc.record({
          profile: pick(PROFILES),
          deleted: fc.integer({ min: 0, max: 9 }).map((n) => n === 0),
        }),
        { minLength: 1, maxLength: 2 },
      ),
      { minLength: 8, maxLength: 8 },
    ),
    events: fc.array(eventArb, { minLength: 8, maxLength: 40 }),
    traits: fc.array(
      fc.record({
        profile: pick(PROFILES),
        name: pick(TRAITS),
        value: fc.oneof(jsonScalar, fc.constant(['gold', 1])),
      }),
      { minLength: 6, maxLength: 16 },
    ),
    consents: fc.array(
      fc.record({
        profile: pick(PROFILES),
        purpose: pick(PURPOSES),
        granted: fc.boolean(),
        at: timeArb,
      }),
      { maxLength: 8 },
    ),
    catalog: fc.array(fc.array(pick(CATEGORIES), { maxLength: 2 }), { minLength: 4, maxLength: 4 }),
  })
  .map((drawn) => {
    const data = emptyDataset();
    drawn.statuses.forEach((versions, i) => {
      for (const status of versions) profile(data, PROFILES[i] as string, status);
    });
    drawn.links.forEach((versions, i) => {
      for (const version of versions)
        link(data, HASHES[i] as string, version.profile, version.deleted);
    });
    for (const e of drawn.events) {
      const row = addEvent(data, { ...e, received: e.at + e.delay });
      if (e.twice) {
        data.events.push({ ...row });
        const order = data.orders.find((o) => o.event_id === row.event_id);
        if (order) data.orders.push({ ...order });
      }
    }
    for (const t of drawn.traits) trait(data, t.profile, t.name, t.value);
    for (const c of drawn.consents) consent(data, c.profile, c.purpose, c.granted, c.at);
    drawn.catalog.forEach((versions, i) => {
      for (const category of versions) product(data, SKUS[i] as string, category);
    });
    return data;
  });

/** Saved segments the random trees may refer to. */
export const SAVED: Readonly<Record<string, SegmentDefinition>> = {
  buyers: {
    name: 'buyers',
    condition: { type: 'event', filter: { eventName: 'Order Completed' } },
  },
  gold: { name: 'gold', condition: { type: 'trait', trait: 'tier', op: '=', value: 'gold' } },
  loyal: {
    name: 'loyal',
    condition: {
      type: 'and',
      conditions: [
        { type: 'segment', id: 'buyers' },
        { type: 'not', condition: { type: 'segment', id: 'gold' } },
      ],
    },
  },
};
