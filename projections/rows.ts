/**
 * What each event in the log becomes in the warehouse: pure functions from a
 * recorded event to rows of the tables in `warehouse/tables.ts`.
 *
 * - A tracking call or a store receipt → one `events` row; one that names
 *   a product also → a `product_interactions` row; an `Order Completed`
 *   call or a receipt also → one `orders` row and its `order_lines`.
 * - An identity decision (streams `profile-…`) → `identity`, `profiles`,
 *   `profile_traits`, `consents` and `consent_history` rows, versioned by
 *   the resolver's decision counter, so the newest decision wins whatever
 *   order the rows arrive in.
 * - A catalog entry → `products` or `stores`.
 *
 * The same event always yields the same rows (no clock, no randomness), so
 * writing a batch again changes nothing.
 */
import type { RecordedEvent } from '../eventstore/event-store.js';
import { CatalogEventTypes } from '../schemas/catalog.js';
import { EVENT_NAMES, ORDER_COMPLETED } from '../schemas/envelope.js';
import type { Identifier } from '../schemas/identifier.js';
import {
  IdentityEventTypes as E,
  type IdentityEvent,
  PROFILE_STREAM_PREFIX,
} from '../schemas/identity.js';
import { clickhouseTime, type Row } from '../warehouse/warehouse.js';

export type { Row };

/** Collects rows by table (the spec's table name). */
export interface RowSink {
  add(table: string, row: Row): void;
}

export interface RowContext {
  /** Identifier types, strongest first: an event is attributed to its strongest identifier. */
  readonly priority: readonly string[];
}

type Json = Record<string, unknown>;

const SEGMENT_TYPES = new Set(['track', 'page', 'screen', 'identify', 'alias', 'group']);

/** Adds the rows `event` becomes to `out`; events the warehouse does not hold add none. */
export function projectEvent(event: RecordedEvent, context: RowContext, out: RowSink): void {
  if (event.stream.startsWith(PROFILE_STREAM_PREFIX)) {
    projectIdentity(event.data as unknown as IdentityEvent, out);
  } else if (event.type === CatalogEventTypes.product) {
    out.add('products', productRow(event));
  } else if (event.type === CatalogEventTypes.store) {
    out.add('stores', storeRow(event));
  } else if (SEGMENT_TYPES.has(event.type) || event.type === 'pos.receipt') {
    projectFact(event, context, out);
  }
}

function projectFact(event: RecordedEvent, context: RowContext, out: RowSink): void {
  const envelope = event.data as Json;
  const data = (envelope.data ?? {}) as Json;
  const source = (envelope.source ?? {}) as Json;
  const properties = (data.properties ?? {}) as Json;
  const context_ = (data.context ?? {}) as Json;
  const receipt = event.type === 'pos.receipt';
  const eventName = receipt
    ? ORDER_COMPLETED
    : event.type === 'track'
      ? String(data.event ?? '')
      : (EVENT_NAMES[event.type] ?? event.type);
  const identifiers = (envelope.identifiers ?? []) as Identifier[];
  const strongest = strongestIdentifier(identifiers, context.priority);
  const attribution = {
    identifier_type: strongest?.type ?? '',
    identifier_hash: strongest?.hash ?? '',
  };
  const position = Number(event.position.commit);
  const lines = receipt ? receiptLines(data) : onlineLines(properties);
  const isOrder = receipt || eventName === ORDER_COMPLETED;
  const storeId = String(source.storeId ?? properties.store_id ?? '');
  const revenueCents = !isOrder
    ? 0
    : receipt
      ? Number(data.totalCents ?? 0)
      : cents(properties.revenue ?? properties.total ?? 0);
  const orderId = isOrder ? String(receipt ? data.receiptId : (properties.order_id ?? '')) : '';
  const currency = String((receipt ? data.currency : properties.currency) ?? '');
  const occurredAt = clickhouseTime(String(envelope.occurredAt));

  const channel = String(data.channel ?? (receipt ? 'offline' : 'online'));
  const productIds = unique([
    ...optionalText(properties.product_id ?? properties.sku),
    ...lines.map((line) => line.sku),
  ]);
  out.add('events', {
    event_id: event.id,
    occurred_at: occurredAt,
    received_at: clickhouseTime(String(envelope.receivedAt)),
    channel,
    source_kind: String(source.kind ?? ''),
    source_id: String(source.id ?? ''),
    store_id: storeId,
    type: event.type,
    event_name: eventName,
    page_name: event.type === 'page' || event.type === 'screen' ? String(data.name ?? '') : '',
    page_path: String(((context_.page ?? {}) as Json).path ?? properties.path ?? ''),
    product_ids: productIds,
    categories: unique([
      ...optionalText(properties.category),
      ...lines.flatMap((line) => optionalText(line.category)),
    ]),
    order_id: orderId,
    revenue: decimal(revenueCents),
    currency: isOrder ? currency : '',
    properties: receipt ? '{}' : JSON.stringify(properties),
    ...attribution,
    identifiers: identifiers.map((identifier) => `${identifier.type}:${identifier.hash}`),
    position,
  });
  if (productIds.length > 0)
    out.add('product_interactions', {
      identifier_hash: attribution.identifier_hash,
      occurred_at: occurredAt,
      event_id: event.id,
      event_name: eventName,
      channel,
      store_id: storeId,
      product_ids: productIds,
      position,
    });
  if (!isOrder) return;

  const order = {
    event_id: event.id,
    order_id: orderId,
    occurred_at: occurredAt,
    channel: receipt ? 'offline' : 'online',
    store_id: storeId,
  };
  out.add('orders', {
    ...order,
    source_id: String(source.id ?? ''),
    fulfillment: receipt ? 'in_store' : String(properties.fulfillment ?? 'shipping'),
    currency,
    revenue: decimal(revenueCents),
    items: lines.reduce((sum, line) => sum + line.quantity, 0),
    lines: lines.length,
    ...attribution,
    position,
  });
  lines.forEach((line, i) => {
    out.add('order_lines', {
      ...order,
      line: i + 1,
      sku: line.sku,
      category: line.category ?? '',
      quantity: line.quantity,
      unit_price: decimal(line.unitCents),
      discount: decimal(line.discountCents),
      amount: decimal(line.unitCents * line.quantity - line.discountCents),
      ...attribution,
      position,
    });
  });
}

interface Line {
  readonly sku: string;
  readonly category: string | undefined;
  readonly quantity: number;
  readonly unitCents: number;
  readonly discountCents: number;
}

function receiptLines(data: Json): Line[] {
  return ((data.lines ?? []) as Json[]).map((line) => ({
    sku: String(line.sku),
    category: undefined,
    quantity: Number(line.quantity ?? 1),
    unitCents: cents(line.unitPrice),
    discountCents: cents(line.discount),
  }));
}

function onlineLines(properties: Json): Line[] {
  const products = properties.products;
  if (!Array.isArray(products)) return [];
  return (products as Json[]).map((product) => ({
    sku: String(product.sku ?? product.product_id ?? ''),
    category: optionalText(product.category)[0],
    quantity: Number(product.quantity ?? 1),
    unitCents: cents(product.price),
    discountCents: 0,
  }));
}

function projectIdentity(event: IdentityEvent, out: RowSink): void {
  const seq = event.seq;
  const map = (identifiers: readonly Identifier[], profileId: string, deleted = 0) => {
    for (const identifier of identifiers)
      out.add('identity', {
        identifier_hash: identifier.hash,
        identifier_type: identifier.type,
        profile_id: profileId,
        seq,
        is_deleted: deleted,
      });
  };
  switch (event.type) {
    case E.created:
      out.add('profiles', {
        profile_id: event.profileId,
        status: 'active',
        merged_into: '',
        created_reason: event.reason,
        seq,
      });
      map(event.identifiers, event.profileId);
      return;
    case E.linked:
    case E.merged:
      map(event.identifiers, event.profileId);
      return;
    case E.absorbed:
      out.add('profiles', {
        profile_id: event.profileId,
        status: 'merged',
        merged_into: event.into,
        seq,
      });
      return;
    case E.split:
      for (const part of event.parts) map(part.identifiers, part.profileId);
      return;
    case E.forgotten:
      map([event.identifier], event.profileId, 1);
      return;
    case E.traits:
      for (const [trait, value] of Object.entries(event.traits))
        out.add('profile_traits', {
          profile_id: event.profileId,
          trait,
          value: JSON.stringify(value),
          seq,
        });
      return;
    case E.consent:
      for (const [purpose, statement] of Object.entries(event.purposes)) {
        const row = {
          profile_id: event.profileId,
          purpose,
          granted: statement.granted,
          stated_at: clickhouseTime(statement.at),
          source: statement.source,
          seq,
        };
        out.add('consents', row);
        out.add('consent_history', row);
      }
      return;
    default:
      // Refusals, shared and ignored identifiers explain decisions; they move nothing.
      return;
  }
}

/** A catalog entry is the data of its envelope, as every fact's payload is. */
const catalogEntry = (event: RecordedEvent): Json => ((event.data as Json).data ?? {}) as Json;

function productRow(event: RecordedEvent): Row {
  const product = catalogEntry(event);
  return {
    sku: product.sku,
    name: product.name,
    category: product.category,
    brand: product.brand,
    price: decimal(cents(product.price)),
    currency: product.currency,
    position: Number(event.position.commit),
  };
}

function storeRow(event: RecordedEvent): Row {
  const store = catalogEntry(event);
  return {
    store_id: store.storeId,
    name: store.name,
    city: store.city,
    district: store.district,
    lat: store.lat,
    lon: store.lon,
    time_zone: store.timeZone,
    categories: store.categories,
    position: Number(event.position.commit),
  };
}

/** The identifier that attributes an event: the strongest type that may link. */
export function strongestIdentifier(
  identifiers: readonly Identifier[],
  priority: readonly string[],
): Identifier | undefined {
  let best: Identifier | undefined;
  let bestRank = Number.POSITIVE_INFINITY;
  for (const identifier of identifiers) {
    const rank =
      (identifier.neverLink ? priority.length + 1 : 0) +
      (priority.indexOf(identifier.type) + 1 || priority.length);
    if (rank < bestRank) {
      best = identifier;
      bestRank = rank;
    }
  }
  return best;
}

/** Whole cents of a price in currency units (prices arrive as JSON numbers like 19.99). */
function cents(value: unknown): number {
  const amount = Number(value ?? 0);
  return Number.isFinite(amount) ? Math.round(amount * 100) : 0;
}

/** Cents as an exact decimal string for a Decimal(18, 2) column. */
function decimal(cents: number): string {
  const sign = cents < 0 ? '-' : '';
  const abs = Math.abs(cents);
  return `${sign}${Math.trunc(abs / 100)}.${String(abs % 100).padStart(2, '0')}`;
}

function optionalText(value: unknown): string[] {
  return typeof value === 'string' && value !== '' ? [value] : [];
}

function unique(values: readonly string[]): string[] {
  return values.length < 2 ? [...values] : [...new Set(values)];
}
