/**
 * The views over the projected tables: the joins through `identity` that
 * give each event and order its current profile, done once for analysts
 * and segments.
 */
import { type DdlOptions, onCluster, quote } from './tables.js';

export interface ViewSpec {
  readonly name: string;
  readonly comment: string;
  /** What each column of the view means; a test checks these match the view. */
  readonly columns: Readonly<Record<string, string>>;
  /** The SELECT, with `{db}` standing for the database. */
  readonly select: string;
}

export const VIEWS: readonly ViewSpec[] = [
  {
    name: 'profile_events',
    comment: 'Events with the profile they belong to now (through `identity`).',
    columns: {
      profile_id: 'The profile holding the event’s identifier now.',
      event_id: 'Id of the event.',
      occurred_at: 'When it happened.',
      channel: '`online` or `offline`.',
      store_id: 'Store, when there is one.',
      event_name: 'Event name, as in `events`.',
      product_ids: 'Products the event is about.',
      categories: 'Categories the event names.',
      order_id: 'Order or receipt id.',
      revenue: 'Revenue of an order or receipt.',
    },
    select: `SELECT i.profile_id AS profile_id, e.event_id, e.occurred_at, e.channel, e.store_id,
       e.event_name, e.product_ids, e.categories, e.order_id, e.revenue
FROM {db}.events AS e
INNER JOIN {db}.identity AS i ON i.identifier_hash = e.identifier_hash`,
  },
  {
    name: 'profile_overview',
    comment:
      'One row per active profile: traits, first and last seen per channel, orders and revenue.',
    columns: {
      profile_id: 'Profile id.',
      traits: 'Current traits (values as JSON).',
      city: 'The `city` trait, unquoted.',
      member_tier: 'The `member_tier` trait, unquoted.',
      preferred_store: 'The store visited most (the `preferred_store` trait).',
      first_seen_online: 'First online event (NULL if none).',
      last_seen_online: 'Last online event (NULL if none).',
      first_seen_offline: 'First store event (NULL if none).',
      last_seen_offline: 'Last store event (NULL if none).',
      events: 'Events of the profile.',
      orders: 'Orders of both channels.',
      revenue: 'Revenue of both channels.',
    },
    select: `WITH
  traits AS (SELECT profile_id, mapFromArrays(groupArray(trait), groupArray(value)) AS traits
             FROM {db}.profile_traits GROUP BY profile_id),
  activity AS (
    SELECT i.profile_id AS profile_id,
           minIf(e.occurred_at, e.channel = 'online') AS first_online,
           maxIf(e.occurred_at, e.channel = 'online') AS last_online,
           minIf(e.occurred_at, e.channel = 'offline') AS first_offline,
           maxIf(e.occurred_at, e.channel = 'offline') AS last_offline,
           countIf(e.channel = 'online') AS online_events,
           countIf(e.channel = 'offline') AS offline_events,
           count() AS events,
           countIf(e.order_id != '') AS orders,
           sum(e.revenue) AS revenue
    FROM {db}.events AS e
    INNER JOIN {db}.identity AS i ON i.identifier_hash = e.identifier_hash
    GROUP BY i.profile_id)
SELECT p.profile_id AS profile_id,
       t.traits AS traits,
       JSONExtractString(t.traits['city']) AS city,
       JSONExtractString(t.traits['member_tier']) AS member_tier,
       JSONExtractString(t.traits['preferred_store']) AS preferred_store,
       if(a.online_events > 0, a.first_online, NULL) AS first_seen_online,
       if(a.online_events > 0, a.last_online, NULL) AS last_seen_online,
       if(a.offline_events > 0, a.first_offline, NULL) AS first_seen_offline,
       if(a.offline_events > 0, a.last_offline, NULL) AS last_seen_offline,
       a.events AS events,
       a.orders AS orders,
       a.revenue AS revenue
FROM {db}.profiles AS p
LEFT JOIN traits AS t ON t.profile_id = p.profile_id
LEFT JOIN activity AS a ON a.profile_id = p.profile_id
WHERE p.status = 'active'`,
  },
];

/** `CREATE OR REPLACE VIEW` for `spec`. */
export function createViewSql(spec: ViewSpec, options: DdlOptions): string {
  return [
    `CREATE OR REPLACE VIEW ${options.database}.${spec.name}${onCluster(options)} AS`,
    spec.select.replaceAll('{db}', options.database),
    `COMMENT ${quote(spec.comment)}`,
  ].join('\n');
}
