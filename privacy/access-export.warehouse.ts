/**
 * What the warehouse holds about a person, for an access export: profile
 * state, traits and consent by profile id; orders by identifier hash; segment
 * entries and exits; the recommendation models their data trained. Each read
 * streams its rows out of ClickHouse (with `final = 1`, as every Tandem
 * connection reads, so a key's newest row is the only one) and takes the
 * person's ids through query parameters.
 */
import type { EventReader } from '../eventstore/event-store.js';
import { readStreamIfExists } from '../eventstore/read-stream.js';
import { SEGMENTS_STREAM } from '../schemas/segment-events.js';
import { isoTime, type Warehouse } from '../warehouse/warehouse.js';

type Row = Record<string, unknown>;

/** Where to look: the person's profile ids and identifier hashes. */
export interface PersonKeys {
  readonly ids: readonly string[];
  readonly hashes: readonly string[];
}

async function* rows<T extends Row>(
  warehouse: Warehouse,
  query: string,
  params: Record<string, unknown>,
): AsyncGenerator<T> {
  const result = await warehouse.client.query({
    query,
    query_params: params,
    format: 'JSONEachRow',
  });
  for await (const batch of result.stream() as unknown as AsyncIterable<{ json(): T }[]>)
    for (const row of batch) yield row.json();
}

/** A DateTime64 read with `toString` → ISO-8601 (null stays null). */
const iso = (value: unknown) => (typeof value === 'string' ? isoTime(value) : null);

export const PROFILE_COLUMNS = ['profile_id', 'status', 'merged_into', 'created_reason'] as const;

export function profileRows(warehouse: Warehouse, keys: PersonKeys): AsyncGenerator<Row> {
  return rows(
    warehouse,
    `SELECT profile_id, status, merged_into, created_reason FROM ${warehouse.table('profiles')}
     WHERE profile_id IN {ids:Array(String)} ORDER BY profile_id`,
    { ids: keys.ids },
  );
}

export const TRAIT_COLUMNS = ['profile_id', 'trait', 'value'] as const;

/** Traits, each value parsed from the JSON text the table keeps. */
export async function* traitRows(warehouse: Warehouse, keys: PersonKeys): AsyncGenerator<Row> {
  for await (const row of rows(
    warehouse,
    `SELECT profile_id, trait, value FROM ${warehouse.table('profile_traits')}
     WHERE profile_id IN {ids:Array(String)} ORDER BY profile_id, trait`,
    { ids: keys.ids },
  ))
    yield { ...row, value: parseJson(String(row.value)) };
}

export const CONSENT_COLUMNS = ['profile_id', 'purpose', 'granted', 'stated_at', 'source'] as const;

/** Consent now, per profile and purpose. */
export async function* consentRows(warehouse: Warehouse, keys: PersonKeys): AsyncGenerator<Row> {
  for await (const row of rows(
    warehouse,
    `SELECT profile_id, purpose, granted, toString(stated_at) AS stated_at, source
     FROM ${warehouse.table('consents')}
     WHERE profile_id IN {ids:Array(String)} ORDER BY profile_id, purpose`,
    { ids: keys.ids },
  ))
    yield { ...row, stated_at: iso(row.stated_at) };
}

export const CONSENT_HISTORY_COLUMNS = [...CONSENT_COLUMNS, 'seq'] as const;

/** Every consent change, oldest decision first. */
export async function* consentHistoryRows(
  warehouse: Warehouse,
  keys: PersonKeys,
): AsyncGenerator<Row> {
  for await (const row of rows(
    warehouse,
    `SELECT profile_id, purpose, granted, toString(stated_at) AS stated_at, source, seq
     FROM ${warehouse.table('consent_history')}
     WHERE profile_id IN {ids:Array(String)} ORDER BY seq, purpose`,
    { ids: keys.ids },
  ))
    yield { ...row, stated_at: iso(row.stated_at) };
}

export const ORDER_COLUMNS = [
  'event_id',
  'order_id',
  'occurred_at',
  'channel',
  'store_id',
  'source_id',
  'fulfillment',
  'currency',
  'revenue',
  'items',
  'lines',
  'identifier_type',
  'identifier',
] as const;

/**
 * Orders of both channels attributed to the person's identifiers;
 * `identifierValue` turns the attributed identifier's hash into its plain value.
 */
export async function* orderRows(
  warehouse: Warehouse,
  keys: PersonKeys,
  identifierValue: (type: string, hash: string) => string | null,
): AsyncGenerator<Row> {
  for await (const { identifier_hash, ...row } of rows(
    warehouse,
    `SELECT toString(event_id) AS event_id, order_id, toString(occurred_at) AS occurred_at, channel,
            store_id, source_id, fulfillment, currency, toString(revenue) AS revenue, items, lines,
            identifier_type, identifier_hash
     FROM ${warehouse.table('orders')}
     WHERE identifier_hash IN {hashes:Array(String)} ORDER BY occurred_at, event_id`,
    { hashes: keys.hashes },
  ))
    yield {
      ...row,
      occurred_at: iso(row.occurred_at),
      identifier: identifierValue(String(row.identifier_type), String(identifier_hash)),
    };
}

export const ORDER_LINE_COLUMNS = [
  'event_id',
  'order_id',
  'occurred_at',
  'channel',
  'store_id',
  'line',
  'sku',
  'category',
  'quantity',
  'unit_price',
  'discount',
  'amount',
] as const;

export async function* orderLineRows(warehouse: Warehouse, keys: PersonKeys): AsyncGenerator<Row> {
  for await (const row of rows(
    warehouse,
    `SELECT toString(event_id) AS event_id, order_id, toString(occurred_at) AS occurred_at, channel,
            store_id, line, sku, category, quantity, toString(unit_price) AS unit_price,
            toString(discount) AS discount, toString(amount) AS amount
     FROM ${warehouse.table('order_lines')}
     WHERE identifier_hash IN {hashes:Array(String)} ORDER BY occurred_at, event_id, line`,
    { hashes: keys.hashes },
  ))
    yield { ...row, occurred_at: iso(row.occurred_at) };
}

export const MEMBERSHIP_COLUMNS = [
  'segment_id',
  'segment_name',
  'profile_id',
  'entered_at',
  'left_at',
  'entered_refresh',
  'left_refresh',
  'segment_version',
] as const;

/**
 * Each stay in a segment: entered at one refresh, left at a later one (or
 * still a member, `left_at` null). The history comes ordered by segment,
 * profile and refresh, so stays are paired as the rows stream by.
 */
export async function* membershipRows(
  warehouse: Warehouse,
  keys: PersonKeys,
  names: ReadonlyMap<string, string>,
): AsyncGenerator<Row> {
  type Stay = Row & { segment_id: string; profile_id: string };
  let open: Stay | undefined;
  const close = (stay: Stay, left?: Row): Row => ({
    ...stay,
    left_at: left ? iso(left.at) : null,
    left_refresh: left ? left.refresh : null,
  });
  for await (const row of rows(
    warehouse,
    `SELECT segment_id, profile_id, change, toString(at) AS at, refresh, segment_version
     FROM ${warehouse.table('segment_membership_history')}
     WHERE profile_id IN {ids:Array(String)} ORDER BY segment_id, profile_id, refresh`,
    { ids: keys.ids },
  )) {
    const segmentId = String(row.segment_id);
    const profileId = String(row.profile_id);
    if (open && (open.segment_id !== segmentId || open.profile_id !== profileId)) {
      yield close(open);
      open = undefined;
    }
    if (row.change === 'entered') {
      if (open) yield close(open);
      open = {
        segment_id: segmentId,
        segment_name: names.get(segmentId) ?? null,
        profile_id: profileId,
        entered_at: iso(row.at),
        entered_refresh: row.refresh,
        segment_version: row.segment_version,
      };
    } else {
      // A `left` with no `entered` before it: the entry predates what the table keeps.
      yield close(
        open ?? {
          segment_id: segmentId,
          segment_name: names.get(segmentId) ?? null,
          profile_id: profileId,
          entered_at: null,
          entered_refresh: null,
          segment_version: row.segment_version,
        },
        row,
      );
      open = undefined;
    }
  }
  if (open) yield close(open);
}

/** Segment names by id, from the segments' own stream in the log (the tables keep ids only). */
export async function segmentNames(
  reader: Pick<EventReader, 'readStream'>,
): Promise<Map<string, string>> {
  const names = new Map<string, string>();
  for await (const event of readStreamIfExists(reader, SEGMENTS_STREAM)) {
    const data = event.data as { segmentId?: unknown; definition?: { name?: unknown } };
    if (typeof data.segmentId === 'string' && typeof data.definition?.name === 'string')
      names.set(data.segmentId, data.definition.name);
  }
  return names;
}

export const RECOMMENDATION_COLUMNS = [
  'model',
  'trained_at',
  'reference_at',
  'profile_id',
  'interactions',
] as const;

/** The recommendation models (still kept) that the person's interactions trained. */
export async function* recommendationRows(
  warehouse: Warehouse,
  keys: PersonKeys,
): AsyncGenerator<Row> {
  for await (const row of rows(
    warehouse,
    `SELECT p.model AS model, toString(m.trained_at) AS trained_at,
            toString(m.reference_at) AS reference_at, p.profile_id AS profile_id,
            p.interactions AS interactions
     FROM ${warehouse.table('reco_model_profiles')} AS p
     INNER JOIN ${warehouse.table('reco_models')} AS m ON m.model = p.model
     WHERE p.profile_id IN {ids:Array(String)} ORDER BY model, profile_id`,
    { ids: keys.ids },
  ))
    yield { ...row, trained_at: iso(row.trained_at), reference_at: iso(row.reference_at) };
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}
