/**
 * The segment language: a JSON tree marketers write, compiled to ClickHouse
 * SQL by `query-api/segments/segment-compiler.ts`. (Not `segment.ts`: that is
 * the Segment tracking spec.)
 *
 * A condition is one of, by `type`:
 * - `and` / `or` over `conditions`, `not` over `condition`, nested at most
 *   `MAX_CONDITION_DEPTH` levels;
 * - `trait`: a comparison on a profile trait (traits are stored as JSON);
 * - `event`: how many events matching a filter a profile has in a window
 *   (at least 1 by default; "did not" is `count: {op: 'exactly', n: 0}`,
 *   which profiles with no events at all satisfy);
 * - `purchase`: orders, revenue or average basket over orders in a window;
 * - `sequence`: an event matching `first`, then one matching `then` within
 *   `withinDays`, optionally sharing a product category;
 * - `consent`: whether a purpose is granted (no statement = not granted);
 * - `segment`: membership of another saved segment, by id.
 *
 * Every message names the field it is about, so a 400 says what and where.
 */
import { z } from 'zod';
import { Purpose } from './consent.js';

/** How deep `and` / `or` / `not` may nest (the root condition is level 1). */
export const MAX_CONDITION_DEPTH = 32;
/** Numbers in conditions stay within ±10^15, where doubles are exact integers. */
const MAX_MAGNITUDE = 1e15;

const text = (field: string, max = 256) =>
  z
    .string({ error: `${field} must be a string` })
    .min(1, `${field} must not be empty`)
    .max(max, `${field} must be at most ${max} characters`);
const number = (field: string) =>
  z
    .number({ error: `${field} must be a finite number` })
    .min(-MAX_MAGNITUDE, `${field} must be at least -1e15`)
    .max(MAX_MAGNITUDE, `${field} must be at most 1e15`);
const integer = (field: string, min: number, max: number) =>
  z
    .int({ error: `${field} must be an integer` })
    .min(min, `${field} must be at least ${min}`)
    .max(max, `${field} must be at most ${max}`);
const enumOf = <const T extends readonly [string, ...string[]]>(field: string, values: T) =>
  z.enum(values, { error: `${field} must be one of ${values.join(', ')}` });

/** A time: an ISO-8601 date (midnight UTC) or date-time with an offset. */
const Time = (field: string) =>
  z
    .union([z.iso.date(), z.iso.datetime({ offset: true })], {
      error: `${field} must be an ISO-8601 date or time, e.g. 2026-01-31 or 2026-01-31T12:00:00Z`,
    })
    .refine((time) => {
      const year = new Date(time).getUTCFullYear();
      return year >= 1970 && year < 2200;
    }, `${field} must fall between 1970 and 2199`);

/**
 * A time window: the last `lastDays` days up to the reference time (now, or
 * `asOf`), or `from` (inclusive) to `to` (exclusive).
 */
export const Window = z
  .strictObject({
    lastDays: integer('window.lastDays', 1, 3650).optional(),
    from: Time('window.from').optional(),
    to: Time('window.to').optional(),
  })
  .superRefine((window, ctx) => {
    const range = window.from !== undefined || window.to !== undefined;
    if (window.lastDays !== undefined && range) {
      ctx.addIssue({ code: 'custom', message: 'window takes lastDays, or from and to, not both' });
    } else if (!range && window.lastDays === undefined) {
      ctx.addIssue({ code: 'custom', message: 'window needs lastDays, or from and to' });
    } else if (range && (window.from === undefined || window.to === undefined)) {
      const missing = window.from === undefined ? 'from' : 'to';
      ctx.addIssue({ code: 'custom', path: [missing], message: `window.${missing} is missing` });
    } else if (range && Date.parse(window.from as string) >= Date.parse(window.to as string)) {
      ctx.addIssue({
        code: 'custom',
        path: ['to'],
        message: 'window.to must be after window.from',
      });
    }
  });
export type Window = z.infer<typeof Window>;

/** The comparisons a trait or an event property can be tested with. */
export const ComparisonOp = enumOf('op', [
  '=',
  '!=',
  '<',
  '<=',
  '>',
  '>=',
  'in',
  'contains',
  'exists',
  'not_exists',
]);
export type ComparisonOp = z.infer<typeof ComparisonOp>;

const valueText = (field: string) =>
  z
    .string({ error: `${field} must be a string` })
    .max(1024, `${field} must be at most 1024 characters`);
const Scalar = z.union([valueText('value'), number('value'), z.boolean()], {
  error: 'value must be a string, a number or a boolean',
});
const ListItem = z.union([valueText('value item'), number('value item')], {
  error: 'each value of in must be a string or a number',
});
const ComparisonValue = z.union([Scalar, z.array(ListItem).min(1).max(1000)], {
  error: 'value must be a string, a number, a boolean or an array of strings and numbers',
});

/** Whether `value` suits `op`: the message for `value` when it does not. */
function valueProblem(op: ComparisonOp, value: unknown): string | undefined {
  const kind = Array.isArray(value) ? 'array' : value === undefined ? 'none' : typeof value;
  switch (op) {
    case 'exists':
    case 'not_exists':
      return kind === 'none' ? undefined : `value must be left out for op ${op}`;
    case 'in':
      return kind === 'array'
        ? undefined
        : 'value must be an array of strings and numbers for op in';
    case 'contains':
      return kind === 'string' && value !== ''
        ? undefined
        : 'value must be a non-empty string for op contains';
    case '=':
    case '!=':
      return kind === 'string' || kind === 'number' || kind === 'boolean'
        ? undefined
        : `value must be a string, a number or a boolean for op ${op}`;
    default:
      return kind === 'string' || kind === 'number'
        ? undefined
        : `value must be a string or a number for op ${op}`;
  }
}

const comparisonShape = { op: ComparisonOp, value: ComparisonValue.optional() };
const checkValue = (
  item: { op: ComparisonOp; value?: unknown },
  ctx: { addIssue(issue: { code: 'custom'; path: string[]; message: string }): void },
) => {
  const problem = valueProblem(item.op, item.value);
  if (problem) ctx.addIssue({ code: 'custom', path: ['value'], message: problem });
};

/**
 * A comparison on an event property. `path` is a key, a dotted path
 * (`"shipping.method"`), or an array of keys when a key holds a dot.
 */
export const PropertyComparison = z
  .strictObject({
    path: z.union(
      [
        text('path').refine(
          (path) => path.split('.').length <= 8 && !path.split('.').includes(''),
          'path must be up to 8 non-empty keys joined by dots (a.b, not a..b)',
        ),
        z.array(text('path key')).min(1).max(8),
      ],
      {
        error: 'path must be a property name, a dotted path or an array of up to 8 keys',
      },
    ),
    ...comparisonShape,
  })
  .superRefine(checkValue);
export type PropertyComparison = z.infer<typeof PropertyComparison>;

/** Where an event happened: `online` (web, app) or `offline` (a store). */
export const Channel = enumOf('channel', ['online', 'offline']);

/**
 * Which events count; every field given must hold. `category` matches the
 * categories the event names and the catalog categories of its products.
 */
export const EventFilter = z.strictObject({
  eventName: text('eventName').optional(),
  channel: Channel.optional(),
  storeId: text('storeId').optional(),
  productId: text('productId').optional(),
  category: text('category').optional(),
  properties: z.array(PropertyComparison).max(20, 'properties takes at most 20').optional(),
});
export type EventFilter = z.infer<typeof EventFilter>;

/** How many matching events: `at_least` (default 1), `at_most` or `exactly` `n`. */
export const EventCount = z.strictObject({
  op: enumOf('count.op', ['at_least', 'at_most', 'exactly']),
  n: integer('count.n', 0, 1_000_000),
});
export type EventCount = z.infer<typeof EventCount>;

/** `{type: 'trait', trait: 'member_tier', op: '=', value: 'gold'}`: a comparison on a profile trait. */
export const TraitCondition = z
  .strictObject({ type: z.literal('trait'), trait: text('trait', 128), ...comparisonShape })
  .superRefine(checkValue);
export type TraitCondition = z.infer<typeof TraitCondition>;

/**
 * `{type: 'event', filter: {eventName: 'Order Completed', channel: 'offline'}, window: {lastDays: 30}}`:
 * the profile has (by default at least one) matching event in the window.
 */
export const EventCondition = z.strictObject({
  type: z.literal('event'),
  filter: EventFilter,
  count: EventCount.optional(),
  window: Window.optional(),
});
export type EventCondition = z.infer<typeof EventCondition>;

const hasCents = (value: number) => Math.abs(value * 100 - Math.round(value * 100)) < 1e-6;

/** `{type: 'purchase', metric: 'revenue', op: '>=', value: 100, window: {lastDays: 90}}`: an aggregate over the profile's orders. */
export const PurchaseCondition = z.strictObject({
  type: z.literal('purchase'),
  metric: enumOf('metric', ['orders', 'revenue', 'average_basket']),
  op: enumOf('op', ['=', '!=', '<', '<=', '>', '>=']),
  value: number('value')
    .min(-1e12, 'value must be at least -1e12')
    .max(1e12, 'value must be at most 1e12')
    .refine(hasCents, 'value must have at most 2 decimals (an amount in currency units)'),
  window: Window.optional(),
  channel: Channel.optional(),
  storeId: text('storeId').optional(),
});
export type PurchaseCondition = z.infer<typeof PurchaseCondition>;

/**
 * `{type: 'sequence', first: {channel: 'online', eventName: 'Product Viewed'}, then: {channel:
 * 'offline', eventName: 'Order Completed'}, withinDays: 7, sameCategory: true}`: a `then` event
 * strictly after a `first` event, at most `withinDays` later, both in the window.
 */
export const SequenceCondition = z.strictObject({
  type: z.literal('sequence'),
  first: EventFilter,
  // biome-ignore lint/suspicious/noThenProperty: a sequence's second step; an object, never callable, so never a thenable
  then: EventFilter,
  withinDays: integer('withinDays', 1, 365),
  sameCategory: z.boolean({ error: 'sameCategory must be true or false' }).optional(),
  window: Window.optional(),
});
export type SequenceCondition = z.infer<typeof SequenceCondition>;

/** `{type: 'consent', purpose: 'marketing_email', granted: true}`: no statement counts as not granted. */
export const ConsentCondition = z.strictObject({
  type: z.literal('consent'),
  purpose: Purpose,
  granted: z.boolean({ error: 'granted must be true or false' }),
});
export type ConsentCondition = z.infer<typeof ConsentCondition>;

/** `{type: 'segment', id: 'vip-shoppers'}`: membership of another saved segment. */
export const SegmentRefCondition = z.strictObject({
  type: z.literal('segment'),
  id: text('id', 128),
});
export type SegmentRefCondition = z.infer<typeof SegmentRefCondition>;

const CONDITION_TYPES = [
  'and',
  'or',
  'not',
  'trait',
  'event',
  'purchase',
  'sequence',
  'consent',
  'segment',
] as const;

/** A condition as marketers write it: a tree of the kinds above, by `type`. */
export type SegmentCondition =
  | { type: 'and'; conditions: SegmentCondition[] }
  | { type: 'or'; conditions: SegmentCondition[] }
  | { type: 'not'; condition: SegmentCondition }
  | TraitCondition
  | EventCondition
  | PurchaseCondition
  | SequenceCondition
  | ConsentCondition
  | SegmentRefCondition;

const conditions = (kind: string) =>
  z
    .array(
      z.lazy((): z.ZodType<SegmentCondition> => ConditionNode),
      {
        error: `conditions of ${kind} must be an array`,
      },
    )
    .min(1, `conditions of ${kind} needs at least one condition`)
    .max(100, `conditions of ${kind} takes at most 100 conditions`);

const ConditionNode: z.ZodType<SegmentCondition> = z.discriminatedUnion(
  'type',
  [
    z.strictObject({ type: z.literal('and'), conditions: conditions('and') }),
    z.strictObject({ type: z.literal('or'), conditions: conditions('or') }),
    z.strictObject({
      type: z.literal('not'),
      condition: z.lazy((): z.ZodType<SegmentCondition> => ConditionNode),
    }),
    TraitCondition,
    EventCondition,
    PurchaseCondition,
    SequenceCondition,
    ConsentCondition,
    SegmentRefCondition,
  ],
  { error: `type must be one of ${CONDITION_TYPES.join(', ')}` },
);

// Named, so the OpenAPI document holds the recursive condition once, under this name.
z.globalRegistry.add(ConditionNode, { id: 'SegmentCondition' });

/**
 * The path of the first condition nested deeper than `max` levels, or
 * undefined. Walks any JSON iteratively, so it is safe on unparsed input.
 */
export function tooDeep(root: unknown, max = MAX_CONDITION_DEPTH): (string | number)[] | undefined {
  const stack: [unknown, number, (string | number)[]][] = [[root, 1, []]];
  while (stack.length > 0) {
    const [node, depth, path] = stack.pop() as [unknown, number, (string | number)[]];
    if (typeof node !== 'object' || node === null) continue;
    if (depth > max) return path;
    const { conditions: children, condition: child } = node as Record<string, unknown>;
    if (Array.isArray(children))
      children.forEach((c, i) => {
        stack.push([c, depth + 1, [...path, 'conditions', i]]);
      });
    if (child !== undefined) stack.push([child, depth + 1, [...path, 'condition']]);
  }
  return undefined;
}

/** A condition tree, at most `MAX_CONDITION_DEPTH` levels deep. */
export const SegmentCondition = ConditionNode.superRefine((condition, ctx) => {
  const path = tooDeep(condition);
  if (path)
    ctx.addIssue({
      code: 'custom',
      path,
      message: `conditions nest deeper than ${MAX_CONDITION_DEPTH} levels here`,
    });
});

/** A segment as saved: a name, an optional description, and its condition. */
export const SegmentDefinition = z.strictObject({
  name: text('name', 200),
  description: z
    .string({ error: 'description must be a string' })
    .max(2000, 'description must be at most 2000 characters')
    .optional(),
  condition: SegmentCondition,
});
export type SegmentDefinition = z.infer<typeof SegmentDefinition>;
