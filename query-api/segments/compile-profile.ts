/**
 * Conditions on what a profile holds rather than on single events: traits,
 * consent, and purchase aggregates over `orders`.
 */
import type {
  ConsentCondition,
  PurchaseCondition,
  TraitCondition,
} from '../../schemas/segment-definition.js';
import { allOf, COPIES_HARMLESS, type CompileContext, timeFilters } from './compile-context.js';
import { jsonPredicate } from './compile-json.js';

/** A predicate on `profile_key` for a trait comparison (`!=` and `not_exists` match profiles without the trait). */
export function compileTrait(condition: TraitCondition, context: CompileContext): string {
  const { params } = context;
  const { sql, negated } = jsonPredicate(params, 'value', condition);
  const trait = params.add(condition.trait, 'String');
  return `profile_key ${negated ? 'NOT IN' : 'IN'} (SELECT profile_key FROM ${context.table('profile_traits')} WHERE trait = ${trait} AND ${sql})`;
}

/**
 * A predicate on `profile_key` for consent: the current statement from
 * `consents`, or with `asOf` the newest statement (by the resolver's `seq`)
 * made by then, from `consent_history`. No statement means not granted.
 */
export function compileConsent(condition: ConsentCondition, context: CompileContext): string {
  const { params } = context;
  const purpose = params.add(condition.purpose, 'String');
  const granted = context.asOf
    ? `SELECT profile_key FROM ${context.table('consent_history')}
WHERE purpose = ${purpose} AND stated_at <= ${params.time(context.asOf)}
GROUP BY profile_key HAVING argMax(granted, seq)`
    : `SELECT profile_key FROM ${context.table('consents')} WHERE purpose = ${purpose} AND granted`;
  return `profile_key ${condition.granted ? 'IN' : 'NOT IN'} (${granted})`;
}

type Op = PurchaseCondition['op'];
const HOLDS: Record<Op, (a: number, b: number) => boolean> = {
  '=': (a, b) => a === b,
  '!=': (a, b) => a !== b,
  '<': (a, b) => a < b,
  '<=': (a, b) => a <= b,
  '>': (a, b) => a > b,
  '>=': (a, b) => a >= b,
};

/**
 * A predicate on `profile_key` for a purchase aggregate. A profile without
 * orders has 0 orders and 0 revenue, so when the comparison holds for 0 the
 * condition is the complement of the profiles whose orders fail it; without
 * orders there is no average basket, so that metric never matches them.
 * Amounts compare exactly, as decimals (the average as revenue against
 * value × orders).
 */
export function compilePurchase(condition: PurchaseCondition, context: CompileContext): string {
  const { params } = context;
  const filters = timeFilters(context, condition.window, 'occurred_at', undefined);
  if (condition.channel !== undefined)
    filters.push(`channel = ${params.add(condition.channel, 'String')}`);
  if (condition.storeId !== undefined)
    filters.push(`store_id = ${params.add(condition.storeId, 'String')}`);
  if (context.asOf) {
    // `orders` keeps no receipt time: take it from the order's event (whether it exists: copies harmless).
    const received = timeFilters(context, condition.window, 'occurred_at', 'received_at');
    filters.push(
      `event_id IN (SELECT event_id FROM ${context.table('events')} WHERE event_name = 'Order Completed' AND ${allOf(received)} SETTINGS ${COPIES_HARMLESS})`,
    );
  }
  const value = params.add(condition.value.toFixed(2), 'Decimal(18, 2)');
  const test =
    condition.metric === 'orders'
      ? `sum(o.orders) ${condition.op} ${value}`
      : condition.metric === 'revenue'
        ? `sum(o.revenue) ${condition.op} ${value}`
        : `sum(o.revenue) ${condition.op} ${value} * sum(o.orders)`;
  const holdsForNone =
    condition.metric !== 'average_basket' && HOLDS[condition.op](0, condition.value);
  return `profile_key ${holdsForNone ? 'NOT IN' : 'IN'} (SELECT i.profile_key FROM (
SELECT identifier_key, count() AS orders, sum(revenue) AS revenue
FROM ${context.table('orders')} WHERE ${allOf(filters)} GROUP BY identifier_key) AS o
INNER JOIN ${context.table('identity')} AS i ON i.identifier_key = o.identifier_key
GROUP BY i.profile_key HAVING ${holdsForNone ? `NOT (${test})` : test})`;
}
