/**
 * The warehouse schema as data: every table and view the projections write
 * and analysts read, with a comment on each column. `migrations.ts` creates
 * them from these specs (views in `views.ts`), `sql-docs.ts` documents them from what ClickHouse
 * reports after the migrations ran, and a test holds the three together.
 *
 * Every table is a ReplacingMergeTree keyed by what makes a row unique (an
 * event id, an identifier hash, a profile and purpose) with a version from the
 * log (a position or the resolver's decision counter). Writing a row twice —
 * a projector restarted after a crash re-delivers its last batch — leaves one
 * row once parts merge, and at once for queries run with `final = 1`, which
 * every connection Tandem opens sets. Nothing here holds plaintext PII:
 * people appear as keyed identifier hashes and profile ids.
 */

export interface Column {
  readonly name: string;
  readonly type: string;
  readonly comment: string;
  /** An expression ClickHouse computes the column from at insert (`MATERIALIZED`); writers never give it. */
  readonly materialized?: string;
}

export interface TableSpec {
  readonly name: string;
  readonly comment: string;
  readonly columns: readonly Column[];
  /** The ReplacingMergeTree version column: the newest version of a key wins. */
  readonly version: string;
  /** A UInt8 column: 1 marks the key deleted once its newest version says so. */
  readonly isDeleted?: string;
  readonly orderBy: string;
  readonly partitionBy?: string;
  /** Data-skipping indexes, as `INDEX` clauses without the keyword. */
  readonly indexes?: readonly string[];
  /** Projections, as `PROJECTION` clauses without the keyword. */
  readonly projections?: readonly string[];
  /** Storage settings (`index_granularity`…), fixed when the table is created. */
  readonly settings?: Readonly<Record<string, number | string>>;
}

export const time = (name: string, comment: string): Column => ({
  name,
  type: "DateTime64(3, 'UTC')",
  comment,
});
export const text = (name: string, comment: string): Column => ({ name, type: 'String', comment });
export const label = (name: string, comment: string): Column => ({
  name,
  type: 'LowCardinality(String)',
  comment,
});
const money = (name: string, comment: string): Column => ({
  name,
  type: 'Decimal(18, 2)',
  comment,
});
const position: Column = {
  name: 'position',
  type: 'UInt64',
  comment: 'Position of the source event in the log; the row version.',
};
const seq: Column = {
  name: 'seq',
  type: 'UInt64',
  comment: "The identity resolver's decision counter; the row version (the newest decision wins).",
};
/**
 * Fixed-width keys beside the strings that name people, computed by
 * ClickHouse at insert: segments join and build sets on these. Hashing
 * millions of 43-byte identifier hashes was most of a segment's time at
 * scale (on 20M events, the set of identifiers behind one condition took
 * 2.2 s as strings and 0.44 s as these keys). 128 bits of SipHash keep two
 * different values from ever sharing a key in practice; the strings stay
 * the truth, and what leaves the warehouse is read through them.
 */
const keyOf = (column: string) => `reinterpretAsUInt128(sipHash128(${column}))`;
export const IDENTIFIER_KEY: Column = {
  name: 'identifier_key',
  type: 'UInt128',
  materialized: keyOf('identifier_hash'),
  comment:
    'A 128-bit key of `identifier_hash`, computed by ClickHouse (name it: `SELECT *` leaves it out); joins on it are several times faster than on the hash.',
};
export const PROFILE_KEY: Column = {
  name: 'profile_key',
  type: 'UInt128',
  materialized: keyOf('profile_id'),
  comment:
    'A 128-bit key of `profile_id`, computed by ClickHouse (name it: `SELECT *` leaves it out); joins on it are several times faster than on the id.',
};

const identifierColumns: readonly Column[] = [
  label(
    'identifier_type',
    'Type of the strongest identifier the event came with (user_id, member_id, email, phone, payment_token, anonymous_id).',
  ),
  text(
    'identifier_hash',
    'Keyed hash of that identifier; join `identity` on it to find the profile.',
  ),
  IDENTIFIER_KEY,
];

/**
 * When each identifier was first known on each channel: the earliest moment
 * one of its events had both happened and been received (so `<= asOf` asks
 * whether the log held one then). ClickHouse keeps it beside every part of
 * `events` and merges it with them, so a segment preview's channel split
 * reads a row per identifier and channel rather than every event. A copy of
 * an event does not change a minimum: read it with `final = 0`.
 */
export const FIRST_KNOWN = 'min(greatest(occurred_at, received_at))';
/** A query must aggregate with `FIRST_KNOWN`, as written here, for ClickHouse to answer it from the projection. */
export const EVENT_CHANNELS_PROJECTION = `identifier_channels (SELECT identifier_key, channel, ${FIRST_KNOWN} GROUP BY identifier_key, channel)`;
/** A ReplacingMergeTree with projections rebuilds them when a merge drops replaced rows. */
const PROJECTED_REPLACING_SETTINGS = { deduplicate_merge_projection_mode: 'rebuild' } as const;

export const EVENTS: TableSpec = {
  name: 'events',
  comment: 'One row per online or offline touchpoint: every tracking call and every store receipt.',
  columns: [
    { name: 'event_id', type: 'UUID', comment: 'Id of the event in the log.' },
    time('occurred_at', 'When it happened (client clock corrected for skew; till time for POS).'),
    time('received_at', 'When Tandem received it.'),
    label('channel', '`online` (web, app) or `offline` (store).'),
    label(
      'source_kind',
      'Kind of source: web, app, pos, import, cmp (a consent-management platform) or system.',
    ),
    label('source_id', 'The source (write key name or POS source) that sent it.'),
    label('store_id', 'Store of a receipt or of an order picked up in store; empty otherwise.'),
    label(
      'type',
      'Call type: track, page, screen, identify, alias, group, or pos.receipt for a store receipt.',
    ),
    label(
      'event_name',
      'Event name: the track event (e.g. `Product Viewed`), `Page Viewed`, `Screen Viewed`, `Identify`, `Alias`, `Group`, or `Order Completed` for a store receipt.',
    ),
    text('page_name', 'Name of a page or screen.'),
    text('page_path', 'Path of the page (context.page.path or properties.path).'),
    {
      name: 'product_ids',
      type: 'Array(String)',
      comment: 'Products the event is about: product_id or sku, of the event or its lines.',
    },
    {
      name: 'categories',
      type: 'Array(LowCardinality(String))',
      comment:
        'Product categories the event names (online events carry them; join `products` for receipts).',
    },
    text('order_id', 'Order id (online) or receipt id (store); empty when not an order.'),
    money('revenue', 'Revenue of an order or receipt; 0 otherwise.'),
    label('currency', 'Currency of `revenue` (ISO 4217); empty when none.'),
    text(
      'properties',
      'The non-personal properties as JSON (personal fields are sealed in the log, never here).',
    ),
    ...identifierColumns,
    {
      name: 'identifiers',
      type: 'Array(String)',
      comment: 'Every identifier the event came with, as `type:hash`.',
    },
    position,
  ],
  version: 'position',
  orderBy: '(toDate(occurred_at), event_id)',
  partitionBy: 'toYYYYMM(occurred_at)',
  indexes: ['identifier_hash_idx identifier_hash TYPE bloom_filter GRANULARITY 4'],
  projections: [EVENT_CHANNELS_PROJECTION],
  settings: PROJECTED_REPLACING_SETTINGS,
};

/** Columns of `events`, by name, for the tables that repeat them. */
function eventColumns(...names: string[]): Column[] {
  return names.map((name) => {
    const column = EVENTS.columns.find((each) => each.name === name);
    if (!column) throw new Error(`events has no column ${name}`);
    return column;
  });
}

/**
 * The events that name a product, again, ordered by who made them: what a
 * request about one person reads (a profile's recommendations) without
 * scanning `events`, which is ordered by time. Small granules, as each read
 * wants a few rows: measured 5 ms for a shopper's rows against 14 ms from
 * `events` on 2M events.
 */
export const PRODUCT_INTERACTIONS: TableSpec = {
  name: 'product_interactions',
  comment:
    'Every event that names a product (views, cart adds, online orders, store receipts), ordered by the identifier that made it, so one person’s are read together. The same events as `events`, fewer columns.',
  columns: [
    text(
      'identifier_hash',
      'Keyed hash of the strongest identifier the event came with, as in `events`; join `identity` on it to find the profile.',
    ),
    ...eventColumns(
      'occurred_at',
      'event_id',
      'event_name',
      'channel',
      'store_id',
      'product_ids',
      'position',
    ),
  ],
  version: 'position',
  orderBy: '(identifier_hash, occurred_at, event_id)',
  settings: { index_granularity: 1024 },
};

const orderColumns: readonly Column[] = [
  {
    name: 'event_id',
    type: 'UUID',
    comment: 'Id of the receipt or `Order Completed` event in the log.',
  },
  text('order_id', 'Order id (online) or receipt id (store).'),
  time('occurred_at', 'When the order was placed or the receipt printed.'),
  label('channel', '`online` or `offline`.'),
  label('store_id', 'Store of the receipt, or of the pickup for an online order; empty otherwise.'),
];

export const ORDERS: TableSpec = {
  name: 'orders',
  comment:
    'Orders from both channels, unified: store receipts and online `Order Completed` events.',
  columns: [
    ...orderColumns,
    label('source_id', 'The source that sent it.'),
    label('fulfillment', '`in_store` for receipts; `shipping` or `store_pickup` online.'),
    label('currency', 'Currency (ISO 4217).'),
    money('revenue', 'Order total after discounts.'),
    { name: 'items', type: 'UInt32', comment: 'Units bought (sum of line quantities).' },
    { name: 'lines', type: 'UInt16', comment: 'Number of order lines.' },
    ...identifierColumns,
    position,
  ],
  version: 'position',
  orderBy: '(toDate(occurred_at), event_id)',
  partitionBy: 'toYYYYMM(occurred_at)',
  indexes: ['identifier_hash_idx identifier_hash TYPE bloom_filter GRANULARITY 4'],
};

export const ORDER_LINES: TableSpec = {
  name: 'order_lines',
  comment: 'One row per line of an order or receipt.',
  columns: [
    ...orderColumns,
    { name: 'line', type: 'UInt16', comment: 'Line number within the order, from 1.' },
    text('sku', 'Product sku.'),
    label(
      'category',
      'Product category when the event named it (online); join `products` otherwise.',
    ),
    { name: 'quantity', type: 'Int32', comment: 'Units.' },
    money('unit_price', 'Price of one unit.'),
    money('discount', 'Discount on the line.'),
    money('amount', 'unit_price × quantity − discount.'),
    ...identifierColumns,
    position,
  ],
  version: 'position',
  orderBy: '(toDate(occurred_at), event_id, line)',
  partitionBy: 'toYYYYMM(occurred_at)',
};

/** The identity table's index of profile ids (migration 5 adds it to existing tables). */
export const PROFILE_ID_INDEX = 'profile_id_idx profile_id TYPE bloom_filter GRANULARITY 1';

export const IDENTITY: TableSpec = {
  name: 'identity',
  comment:
    'Which profile each identifier belongs to now. A merge or split rewrites only these rows, so events join their current profile through it.',
  columns: [
    text('identifier_hash', 'Keyed hash of the identifier.'),
    label('identifier_type', 'Identifier type.'),
    text('profile_id', 'The profile holding it.'),
    seq,
    IDENTIFIER_KEY,
    PROFILE_KEY,
    {
      name: 'is_deleted',
      type: 'UInt8',
      comment: '1 when the identifier was forgotten (the row then disappears from queries).',
    },
  ],
  version: 'seq',
  isDeleted: 'is_deleted',
  orderBy: 'identifier_hash',
  // A profile's identifiers are read by profile id (profile reads, recommendations): measured 2x faster with it.
  indexes: [PROFILE_ID_INDEX],
};

export const PROFILES: TableSpec = {
  name: 'profiles',
  comment: 'Every profile the resolver made, and whether it is active or was merged into another.',
  columns: [
    text('profile_id', 'Profile id (`prf_…`).'),
    label('status', '`active`, or `merged` once absorbed by another profile.'),
    text('merged_into', 'The surviving profile when merged; empty otherwise.'),
    label('created_reason', 'Why it was created: first_seen, split, refused or shared.'),
    seq,
    PROFILE_KEY,
  ],
  version: 'seq',
  orderBy: 'profile_id',
};

export const PROFILE_TRAITS: TableSpec = {
  name: 'profile_traits',
  comment:
    'Non-personal traits of profiles (city, member tier, preferred store…), one row per profile and trait.',
  columns: [
    text('profile_id', 'Profile id.'),
    text('trait', 'Trait name.'),
    text('value', 'Trait value as JSON (a string value is quoted).'),
    seq,
    PROFILE_KEY,
  ],
  version: 'seq',
  orderBy: '(profile_id, trait)',
};

const consentColumns: readonly Column[] = [
  text('profile_id', 'Profile id.'),
  label(
    'purpose',
    'Purpose: analytics, personalization, marketing_email, marketing_sms, or configured ones.',
  ),
  { name: 'granted', type: 'Bool', comment: 'Whether the purpose is allowed.' },
  time('stated_at', 'When the person stated it.'),
  label(
    'source',
    'Where it was stated: web, app, pos, import, cmp (a consent-management platform) or system.',
  ),
  seq,
  PROFILE_KEY,
];

export const CONSENTS: TableSpec = {
  name: 'consents',
  comment: 'Current consent of each profile per purpose (the latest statement wins).',
  columns: consentColumns,
  version: 'seq',
  orderBy: '(profile_id, purpose)',
};

export const CONSENT_HISTORY: TableSpec = {
  name: 'consent_history',
  comment: 'Every consent change of every profile, oldest first by `seq`.',
  columns: consentColumns,
  version: 'seq',
  orderBy: '(profile_id, purpose, seq)',
};

export const PRODUCTS: TableSpec = {
  name: 'products',
  comment: 'The product catalog (dimension).',
  columns: [
    text('sku', 'Product sku.'),
    text('name', 'Product name.'),
    label('category', 'Category.'),
    label('brand', 'Brand.'),
    money('price', 'List price.'),
    label('currency', 'Currency of the price.'),
    position,
  ],
  version: 'position',
  orderBy: 'sku',
};

export const STORES: TableSpec = {
  name: 'stores',
  comment: 'The physical stores (dimension).',
  columns: [
    label('store_id', 'Store id.'),
    text('name', 'Store name.'),
    label('city', 'City.'),
    label('district', 'District.'),
    { name: 'lat', type: 'Float64', comment: 'Latitude.' },
    { name: 'lon', type: 'Float64', comment: 'Longitude.' },
    label('time_zone', 'IANA time zone of the store.'),
    { name: 'categories', type: 'Array(LowCardinality(String))', comment: 'Categories it sells.' },
    position,
  ],
  version: 'position',
  orderBy: 'store_id',
};

/** The tables the projections write, in the order they are created. */
export const PROJECTED_TABLES: readonly TableSpec[] = [
  EVENTS,
  PRODUCT_INTERACTIONS,
  ORDERS,
  ORDER_LINES,
  IDENTITY,
  PROFILES,
  PROFILE_TRAITS,
  CONSENTS,
  CONSENT_HISTORY,
  PRODUCTS,
  STORES,
];

/**
 * Segment membership, written by segment refreshes (not by the projector):
 * who is in each saved segment now, and who entered and left at each
 * refresh. A rebuild of the projections leaves them alone.
 */
export const SEGMENT_MEMBERS: TableSpec = {
  name: 'segment_members',
  comment: 'Who is in each saved segment as of its latest refresh.',
  columns: [
    text('segment_id', 'Segment id (`seg_…`).'),
    text('profile_id', 'A member profile.'),
    time('since', 'When the profile entered (the refresh that added it).'),
    {
      name: 'refresh',
      type: 'UInt64',
      comment: 'The refresh that last wrote the row; the row version.',
    },
    {
      name: 'is_deleted',
      type: 'UInt8',
      comment: '1 once the profile left the segment (the row then disappears from queries).',
    },
  ],
  version: 'refresh',
  isDeleted: 'is_deleted',
  orderBy: '(segment_id, profile_id)',
};

export const SEGMENT_MEMBERSHIP_HISTORY: TableSpec = {
  name: 'segment_membership_history',
  comment: 'Every entry into and exit from every saved segment, one row per profile and refresh.',
  columns: [
    text('segment_id', 'Segment id.'),
    text('profile_id', 'The profile that entered or left.'),
    label('change', '`entered` or `left`.'),
    time('at', 'When the refresh ran.'),
    {
      name: 'refresh',
      type: 'UInt64',
      comment: 'The refresh (per segment, from 1); the row version.',
    },
    { name: 'segment_version', type: 'UInt32', comment: 'The version of the definition it ran.' },
  ],
  version: 'refresh',
  orderBy: '(segment_id, profile_id, refresh)',
};

/** The tables segment refreshes write. */
export const SEGMENT_TABLES: readonly TableSpec[] = [SEGMENT_MEMBERS, SEGMENT_MEMBERSHIP_HISTORY];

/** Where each projector stores how far into the log it has written. */
export const CHECKPOINTS: TableSpec = {
  name: 'projector_checkpoints',
  comment: 'How far into the log each projector has written (written after its data).',
  columns: [
    label('projector', 'Projector name.'),
    { name: 'commit', type: 'UInt64', comment: 'Commit position of the last event written.' },
    { name: 'prepare', type: 'UInt64', comment: 'Prepare position of the last event written.' },
    { name: 'events', type: 'UInt64', comment: 'Events the projector has handled in all.' },
    {
      name: 'updated_at',
      type: "DateTime64(6, 'UTC')",
      comment:
        'When the checkpoint was written; the row version (the latest write wins, so a rebuild can move it back).',
    },
  ],
  version: 'updated_at',
  orderBy: 'projector',
};

/** The projected table `name`'s spec; throws for a name that is not one. */
export function projectedTable(name: string): TableSpec {
  const spec = PROJECTED_TABLES.find((table) => table.name === name);
  if (!spec) throw new Error(`${name} is not a projected table`);
  return spec;
}

const columnNamesBySpec = new WeakMap<TableSpec, readonly string[]>();
/** The names of the columns a writer gives values for, in `spec`'s order (computed once per spec). */
export function columnNames(spec: TableSpec): readonly string[] {
  let names = columnNamesBySpec.get(spec);
  if (!names) {
    names = spec.columns.filter((column) => !column.materialized).map((column) => column.name);
    columnNamesBySpec.set(spec, names);
  }
  return names;
}

/** What a cluster changes in the DDL: `ON CLUSTER` and replicated engines. */
export interface DdlOptions {
  readonly database: string;
  readonly cluster?: string | undefined;
}

export const quote = (text: string) => `'${text.replaceAll('\\', '\\\\').replaceAll("'", "\\'")}'`;

/** A column's definition, as `CREATE TABLE` and `ADD COLUMN` take it. */
export function columnSql(column: Column): string {
  const materialized = column.materialized ? ` MATERIALIZED ${column.materialized}` : '';
  return `${column.name} ${column.type}${materialized} COMMENT ${quote(column.comment)}`;
}

/** Storage settings, as `SETTINGS` and `MODIFY SETTING` take them. */
export function settingsSql(settings: NonNullable<TableSpec['settings']>): string {
  return Object.entries(settings)
    .map(([name, value]) => `${name} = ${typeof value === 'string' ? quote(value) : value}`)
    .join(', ');
}

/** `CREATE TABLE IF NOT EXISTS` for `spec`, under `name` (a shadow table during a rebuild). */
export function createTableSql(spec: TableSpec, options: DdlOptions, name = spec.name): string {
  const columns = spec.columns.map((column) => `  ${columnSql(column)}`);
  const indexes = (spec.indexes ?? []).map((index) => `  INDEX ${index}`);
  const projections = (spec.projections ?? []).map((projection) => `  PROJECTION ${projection}`);
  const versionArgs = [spec.version, ...(spec.isDeleted ? [spec.isDeleted] : [])].join(', ');
  const engine = options.cluster
    ? `ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}', ${versionArgs})`
    : `ReplacingMergeTree(${versionArgs})`;
  return [
    `CREATE TABLE IF NOT EXISTS ${options.database}.${name}${onCluster(options)}`,
    `(\n${[...columns, ...indexes, ...projections].join(',\n')}\n)`,
    `ENGINE = ${engine}`,
    ...(spec.partitionBy ? [`PARTITION BY ${spec.partitionBy}`] : []),
    `ORDER BY ${spec.orderBy}`,
    ...(spec.settings ? [`SETTINGS ${settingsSql(spec.settings)}`] : []),
    `COMMENT ${quote(spec.comment)}`,
  ].join('\n');
}

export function onCluster(options: DdlOptions): string {
  return options.cluster ? ` ON CLUSTER ${options.cluster}` : '';
}
