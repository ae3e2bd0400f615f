/**
 * Event conditions: occurrence counts and sequences. Events are filtered by
 * time first (the tables are partitioned and ordered by `occurred_at`), then
 * counted per identifier, and only then joined to `identity` to find the
 * profile — so the join sees one row per identifier, not per event. Sets and
 * joins are on the 128-bit keys (`identifier_key`, `profile_key`), not the
 * strings they stand for.
 */
import type {
  EventCondition,
  EventFilter,
  SequenceCondition,
  Window,
} from '../../schemas/segment-definition.js';
import {
  allOf,
  COPIES_HARMLESS,
  type CompileContext,
  DAY_MS,
  timeFilters,
} from './compile-context.js';
import { jsonPredicate } from './compile-json.js';

/**
 * The categories of an event: those it names (`events.categories`: online
 * events and their lines) and the catalog categories of its products — the
 * only source for store receipts, whose lines carry no category.
 */
const EVENT_CATEGORIES =
  "arrayConcat(CAST(categories, 'Array(String)'), arrayMap(sku -> transform(sku, catalog.1, catalog.2, ''), product_ids))";

/**
 * The catalog as a (skus, categories) pair, one scalar subquery that
 * `transform` looks up. FINAL in the query itself: it may sit inside a
 * subquery that reads `events` without (`selectEvents`),
 * and a product's older row must not answer for its category.
 */
const catalogWith = (context: CompileContext) =>
  `WITH (SELECT (groupArray(sku), groupArray(toString(category))) FROM ${context.table('products')} FINAL) AS catalog `;

/** The WHERE of the events `filter` and `window` select, and whether it needs the catalog. */
function eventFilters(
  context: CompileContext,
  filter: EventFilter,
  window: Window | undefined,
): { where: string; catalog: boolean } {
  const { params } = context;
  const filters = timeFilters(context, window, 'occurred_at', 'received_at');
  if (filter.eventName !== undefined)
    filters.push(`event_name = ${params.add(filter.eventName, 'String')}`);
  if (filter.channel !== undefined)
    filters.push(`channel = ${params.add(filter.channel, 'String')}`);
  if (filter.storeId !== undefined)
    filters.push(`store_id = ${params.add(filter.storeId, 'String')}`);
  if (filter.productId !== undefined)
    filters.push(`has(product_ids, ${params.add(filter.productId, 'String')})`);
  if (filter.category !== undefined)
    filters.push(`has(${EVENT_CATEGORIES}, ${params.add(filter.category, 'String')})`);
  for (const property of filter.properties ?? []) {
    const keys = typeof property.path === 'string' ? property.path.split('.') : property.path;
    const args = ['properties', ...keys.map((key) => params.add(key, 'String'))].join(', ');
    const { sql, negated } = jsonPredicate(params, args, property);
    filters.push(negated ? `NOT (${sql})` : sql);
  }
  return { where: allOf(filters), catalog: filter.category !== undefined };
}

/**
 * `SELECT columns FROM events WHERE <filter> [GROUP BY …]`, with the catalog
 * when the filter or columns need it. Without FINAL, the setting kept inside
 * this subquery: every caller asks only whether matching events exist, or
 * counts distinct event ids, and a copy of an event (a re-delivered batch,
 * before the parts merge) changes neither. FINAL on `events` was most of an
 * event condition's time: on 20.7M events, "viewed online in the last 30
 * days" took 1,000–1,200 ms with it and 310–340 ms without; on 2M events the
 * showroomers sequence's preview went from 1,747 to 1,093 ms.
 */
function selectEvents(
  context: CompileContext,
  filter: EventFilter,
  window: Window | undefined,
  columns: string,
  options: { needsCatalog?: boolean; groupBy?: string } = {},
): string {
  const { where, catalog } = eventFilters(context, filter, window);
  const withCatalog = catalog || options.needsCatalog ? catalogWith(context) : '';
  const grouping = options.groupBy ? ` GROUP BY ${options.groupBy}` : '';
  return `${withCatalog}SELECT ${columns} FROM ${context.table('events')} WHERE ${where}${grouping} SETTINGS ${COPIES_HARMLESS}`;
}

/**
 * A predicate on `profile_key` for an event condition. Counts that zero
 * satisfies (`at_most n`, `exactly 0`) are the complement of the profiles
 * with more events, so profiles with no events at all match them.
 */
export function compileEvent(condition: EventCondition, context: CompileContext): string {
  const { op, n } = condition.count ?? { op: 'at_least', n: 1 };
  const { params } = context;
  const identity = context.table('identity');
  const matching = (having: string) =>
    `SELECT i.profile_key FROM (${selectEvents(context, condition.filter, condition.window, 'identifier_key, uniqExact(event_id) AS n', { groupBy: 'identifier_key' })}) AS e
INNER JOIN ${identity} AS i ON i.identifier_key = e.identifier_key
GROUP BY i.profile_key HAVING ${having}`;
  const anyEvent = () =>
    `SELECT profile_key FROM ${identity} WHERE identifier_key IN (${selectEvents(context, condition.filter, condition.window, 'identifier_key')})`;

  if (op === 'at_least' && n === 0) return 'true';
  if (op === 'at_least' && n === 1) return `profile_key IN (${anyEvent()})`;
  if (op === 'at_least')
    return `profile_key IN (${matching(`sum(e.n) >= ${params.add(n, 'UInt64')}`)})`;
  if (op === 'exactly' && n > 0)
    return `profile_key IN (${matching(`sum(e.n) = ${params.add(n, 'UInt64')}`)})`;
  // at_most n, exactly 0: not among those with more.
  if (n === 0) return `profile_key NOT IN (${anyEvent()})`;
  return `profile_key NOT IN (${matching(`sum(e.n) > ${params.add(n, 'UInt64')}`)})`;
}

/**
 * A predicate on `profile_key` for a sequence: an event matching `first`,
 * then one matching `then` strictly later and at most `withinDays` after it,
 * both within the window; with `sameCategory`, sharing a category. Each side
 * is grouped to one array of times per profile (and category), so the join
 * pairs profiles, not events.
 */
export function compileSequence(condition: SequenceCondition, context: CompileContext): string {
  const { sameCategory = false, window } = condition;
  const identity = context.table('identity');
  const side = (filter: EventFilter) => {
    const columns = sameCategory
      ? `identifier_key, toUnixTimestamp64Milli(occurred_at) AS t, arrayJoin(arrayDistinct(arrayFilter(c -> c != '', ${EVENT_CATEGORIES}))) AS category`
      : 'identifier_key, toUnixTimestamp64Milli(occurred_at) AS t';
    const keys = sameCategory
      ? 'i.profile_key AS profile_key, e.category AS category'
      : 'i.profile_key AS profile_key';
    return `SELECT ${keys}, groupArray(e.t) AS ts
FROM (${selectEvents(context, filter, window, columns, { needsCatalog: sameCategory })}) AS e
INNER JOIN ${identity} AS i ON i.identifier_key = e.identifier_key
GROUP BY ${sameCategory ? 'profile_key, category' : 'profile_key'}`;
  };
  const first = side(condition.first);
  const then = side(condition.then);
  const within = context.params.add(condition.withinDays * DAY_MS, 'Int64');
  const on = sameCategory
    ? 'a.profile_key = b.profile_key AND a.category = b.category'
    : 'a.profile_key = b.profile_key';
  return `profile_key IN (SELECT a.profile_key FROM (${first}) AS a
INNER JOIN (${then}) AS b ON ${on}
WHERE arrayExists(tb -> arrayExists(ta -> ta < tb AND tb - ta <= ${within}, a.ts), b.ts))`;
}
