/**
 * A plain in-memory evaluator of segment conditions, written from the
 * language's documented meaning and independently of the SQL compiler: the
 * property test checks that the compiled SQL, run on the same rows in
 * ClickHouse, finds exactly the profiles this finds.
 *
 * It takes the warehouse rows as they were inserted (duplicates and old
 * versions included) and does itself what `final = 1` does in ClickHouse:
 * the newest version of each key wins, deleted identifiers disappear.
 */
import type {
  EventFilter,
  PropertyComparison,
  SegmentCondition,
  SegmentDefinition,
  Window,
} from '../../../schemas/segment-definition.js';

type Json = unknown;

/** An `events` row (the columns the evaluator reads; the others pass through). */
export interface EventRow {
  event_id: string;
  occurred_at: string;
  received_at: string;
  channel: string;
  store_id: string;
  event_name: string;
  product_ids: string[];
  categories: string[];
  properties: string;
  identifier_hash: string;
  position: number;
  [column: string]: unknown;
}
/** An `orders` row. */
export interface OrderRow {
  event_id: string;
  occurred_at: string;
  channel: string;
  store_id: string;
  revenue: string;
  identifier_hash: string;
  position: number;
  [column: string]: unknown;
}
/** An `identity` row. */
export interface IdentityRow {
  identifier_hash: string;
  identifier_type: string;
  profile_id: string;
  seq: number;
  is_deleted: number;
}
/** A `profiles` row. */
export interface ProfileRow {
  profile_id: string;
  status: string;
  merged_into: string;
  created_reason: string;
  seq: number;
}
/** A `profile_traits` row. */
export interface TraitRow {
  profile_id: string;
  trait: string;
  value: string;
  seq: number;
}
/** A `consents` / `consent_history` row. */
export interface ConsentRow {
  profile_id: string;
  purpose: string;
  granted: boolean;
  stated_at: string;
  source: string;
  seq: number;
}
/** A `products` row. */
export interface ProductRow {
  sku: string;
  category: string;
  position: number;
  [column: string]: unknown;
}

/** Rows per warehouse table, as inserted. */
export interface SegmentDataset {
  events: EventRow[];
  orders: OrderRow[];
  order_lines: Record<string, unknown>[];
  identity: IdentityRow[];
  profiles: ProfileRow[];
  profile_traits: TraitRow[];
  consents: ConsentRow[];
  consent_history: ConsentRow[];
  products: ProductRow[];
}

/** The compiler's options, minus the database. */
export interface EvaluateOptions {
  readonly now: Date;
  readonly asOf?: Date | undefined;
  readonly lookup?: ((id: string) => SegmentDefinition | undefined) | undefined;
}

const DAY = 86_400_000;
/** `2026-01-08 13:31:24.735` (UTC) → milliseconds. */
export const parseTime = (time: string) => Date.parse(`${time.replace(' ', 'T')}Z`);
const cents = (amount: string) => Math.round(Number(amount) * 100);

/** The newest row per key (by `version`; the later insert on a tie), as FINAL keeps it. */
function newest<T>(rows: readonly T[], key: (row: T) => string, version: (row: T) => number): T[] {
  const kept = new Map<string, T>();
  for (const row of rows) {
    const held = kept.get(key(row));
    if (!held || version(row) >= version(held)) kept.set(key(row), row);
  }
  return [...kept.values()];
}

interface Event {
  row: EventRow;
  at: number;
  received: number;
  categories: Set<string>;
  properties: Json;
}

/** The active profiles `condition` selects in `data`. */
export function evaluateSegment(
  condition: SegmentCondition,
  data: SegmentDataset,
  options: EvaluateOptions,
): Set<string> {
  const reference = (options.asOf ?? options.now).getTime();
  const asOf = options.asOf?.getTime();
  const owner = new Map<string, string>();
  for (const row of newest(
    data.identity,
    (r) => r.identifier_hash,
    (r) => r.seq,
  ))
    if (row.is_deleted === 0) owner.set(row.identifier_hash, row.profile_id);
  const catalog = new Map(
    newest(
      data.products,
      (r) => r.sku,
      (r) => r.position,
    ).map((r) => [r.sku, r.category]),
  );
  const known = (at: number, received: number) =>
    asOf === undefined || (at <= asOf && received <= asOf);

  const eventsOf = new Map<string, Event[]>();
  const eventById = new Map<string, Event>();
  for (const row of newest(
    data.events,
    (r) => `${r.occurred_at.slice(0, 10)}|${r.event_id}`,
    (r) => r.position,
  )) {
    const categories = new Set(row.categories);
    for (const sku of row.product_ids) {
      const category = catalog.get(sku);
      if (category) categories.add(category);
    }
    const event = {
      row,
      at: parseTime(row.occurred_at),
      received: parseTime(row.received_at),
      categories,
      properties: JSON.parse(row.properties) as Json,
    };
    eventById.set(row.event_id, event);
    const profile = owner.get(row.identifier_hash);
    if (profile === undefined || !known(event.at, event.received)) continue;
    eventsOf.set(profile, [...(eventsOf.get(profile) ?? []), event]);
  }
  const ordersOf = new Map<string, { at: number; row: OrderRow }[]>();
  for (const row of newest(
    data.orders,
    (r) => `${r.occurred_at.slice(0, 10)}|${r.event_id}`,
    (r) => r.position,
  )) {
    const profile = owner.get(row.identifier_hash);
    const event = eventById.get(row.event_id);
    if (profile === undefined) continue;
    if (asOf !== undefined && (!event || !known(event.at, event.received))) continue;
    if (asOf !== undefined && event?.row.event_name !== 'Order Completed') continue;
    ordersOf.set(profile, [
      ...(ordersOf.get(profile) ?? []),
      { at: parseTime(row.occurred_at), row },
    ]);
  }
  const traits = new Map<string, Json>();
  for (const row of newest(
    data.profile_traits,
    (r) => `${r.profile_id}|${r.trait}`,
    (r) => r.seq,
  ))
    traits.set(`${row.profile_id}|${row.trait}`, JSON.parse(row.value));
  const consent = new Map<string, boolean>();
  const statements =
    asOf === undefined
      ? newest(
          data.consents,
          (r) => `${r.profile_id}|${r.purpose}`,
          (r) => r.seq,
        )
      : newest(
          data.consent_history.filter((r) => parseTime(r.stated_at) <= asOf),
          (r) => `${r.profile_id}|${r.purpose}`,
          (r) => r.seq,
        );
  for (const row of statements) consent.set(`${row.profile_id}|${row.purpose}`, row.granted);

  const inWindow = (at: number, window: Window | undefined) => {
    if (!window) return true;
    if (window.lastDays !== undefined)
      return at >= reference - window.lastDays * DAY && at <= reference;
    return at >= Date.parse(window.from as string) && at < Date.parse(window.to as string);
  };
  const matches = (event: Event, filter: EventFilter, window: Window | undefined) =>
    inWindow(event.at, window) &&
    (filter.eventName === undefined || event.row.event_name === filter.eventName) &&
    (filter.channel === undefined || event.row.channel === filter.channel) &&
    (filter.storeId === undefined || event.row.store_id === filter.storeId) &&
    (filter.productId === undefined || event.row.product_ids.includes(filter.productId)) &&
    (filter.category === undefined || event.categories.has(filter.category)) &&
    (filter.properties ?? []).every((p) => testProperty(event.properties, p));

  const holds = (c: SegmentCondition, profile: string, following: string[]): boolean => {
    switch (c.type) {
      case 'and':
        return c.conditions.every((child) => holds(child, profile, following));
      case 'or':
        return c.conditions.some((child) => holds(child, profile, following));
      case 'not':
        return !holds(c.condition, profile, following);
      case 'trait':
        return testJson(traits.get(`${profile}|${c.trait}`), c.op, c.value);
      case 'consent':
        return (consent.get(`${profile}|${c.purpose}`) ?? false) === c.granted;
      case 'event': {
        const n = (eventsOf.get(profile) ?? []).filter((e) =>
          matches(e, c.filter, c.window),
        ).length;
        const count = c.count ?? { op: 'at_least', n: 1 };
        if (count.op === 'at_least') return n >= count.n;
        return count.op === 'at_most' ? n <= count.n : n === count.n;
      }
      case 'sequence': {
        const events = eventsOf.get(profile) ?? [];
        const firsts = events.filter((e) => matches(e, c.first, c.window));
        const thens = events.filter((e) => matches(e, c.then, c.window));
        return firsts.some((a) =>
          thens.some(
            (b) =>
              b.at > a.at &&
              b.at - a.at <= c.withinDays * DAY &&
              (!c.sameCategory || [...a.categories].some((x) => b.categories.has(x))),
          ),
        );
      }
      case 'purchase': {
        const orders = (ordersOf.get(profile) ?? []).filter(
          (o) =>
            inWindow(o.at, c.window) &&
            (c.channel === undefined || o.row.channel === c.channel) &&
            (c.storeId === undefined || o.row.store_id === c.storeId),
        );
        const revenue = orders.reduce((sum, o) => sum + cents(o.row.revenue), 0);
        const value = Math.round(c.value * 100);
        if (c.metric === 'orders') return compare(orders.length * 100, c.op, value);
        if (c.metric === 'revenue') return compare(revenue, c.op, value);
        return orders.length > 0 && compare(revenue, c.op, value * orders.length);
      }
      case 'segment': {
        if (following.includes(c.id)) throw new Error(`cycle through ${c.id}`);
        const definition = options.lookup?.(c.id);
        if (!definition) throw new Error(`unknown segment ${c.id}`);
        return holds(definition.condition, profile, [...following, c.id]);
      }
    }
  };

  const members = new Set<string>();
  for (const row of newest(
    data.profiles,
    (r) => r.profile_id,
    (r) => r.seq,
  ))
    if (row.status === 'active' && holds(condition, row.profile_id, []))
      members.add(row.profile_id);
  return members;
}

function compare(a: number, op: string, b: number): boolean {
  switch (op) {
    case '=':
      return a === b;
    case '!=':
      return a !== b;
    case '<':
      return a < b;
    case '<=':
      return a <= b;
    case '>':
      return a > b;
    default:
      return a >= b;
  }
}

/** ClickHouse compares strings as bytes; JavaScript as UTF-16 units. */
const bytes = (a: string, b: string) => Buffer.compare(Buffer.from(a), Buffer.from(b));

function testJson(actual: Json, op: string, expected: unknown): boolean {
  switch (op) {
    case 'exists':
      return actual !== undefined && actual !== null;
    case 'not_exists':
      return actual === undefined || actual === null;
    case '!=':
      return !testJson(actual, '=', expected);
    case 'in':
      return (expected as unknown[]).some((item) => testJson(actual, '=', item));
    case 'contains':
      return typeof actual === 'string' && actual.includes(expected as string);
  }
  if (typeof actual !== typeof expected) return false;
  if (typeof actual === 'string') return compare(bytes(actual, expected as string), op, 0);
  if (typeof actual === 'number') return compare(actual, op, expected as number);
  return typeof actual === 'boolean' && op === '=' && actual === expected;
}

function testProperty(properties: Json, comparison: PropertyComparison): boolean {
  const keys = typeof comparison.path === 'string' ? comparison.path.split('.') : comparison.path;
  let value: Json = properties;
  for (const key of keys) {
    const isObject = typeof value === 'object' && value !== null && !Array.isArray(value);
    value =
      isObject && Object.hasOwn(value as object, key)
        ? (value as Record<string, Json>)[key]
        : undefined;
  }
  return testJson(value, comparison.op, comparison.value);
}
