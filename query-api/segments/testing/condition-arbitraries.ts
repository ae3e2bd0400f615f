/**
 * fast-check arbitraries of segment condition trees over the vocabulary of
 * `segment-data.ts`, so that random conditions often meet random rows. Every
 * tree they make is valid for the schema.
 */
import fc from 'fast-check';
import type { SegmentCondition } from '../../../schemas/segment-definition.js';
import {
  CATEGORIES,
  DAY,
  EVENT_NAMES,
  NOW,
  NUMBERS,
  PURPOSES,
  SAVED,
  SKUS,
  STORES,
  STRINGS,
  TRAITS,
} from './segment-data.js';

const pick = <T>(values: readonly T[]) => fc.constantFrom(...values);
/** Absent three times in four, so filters stay loose enough to match some rows. */
const optional = <T>(arb: fc.Arbitrary<T>) =>
  fc.oneof({ weight: 3, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: arb });
/** Drops the keys whose value is undefined (the schema's optional fields are absent, not undefined). */
const defined = <T extends object>(value: T): T =>
  Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as T;

const iso = (ms: number) => new Date(ms).toISOString();
/** A window: the last N days, or a range on the quarter-day grid. */
export const windowArb = fc.oneof(
  pick([1, 3, 7, 30]).map((lastDays) => ({ lastDays })),
  fc
    .tuple(fc.integer({ min: -4, max: 160 }), fc.integer({ min: 1, max: 80 }))
    .map(([start, length]) => ({
      from: iso(NOW.getTime() - (start * DAY) / 4 - (length * DAY) / 4),
      to: iso(NOW.getTime() - (start * DAY) / 4),
    })),
);

const comparisonArb = fc.oneof(
  fc.record({
    op: pick(['=', '!='] as const),
    value: fc.oneof(pick(STRINGS), pick(NUMBERS), fc.boolean()),
  }),
  fc.record({
    op: pick(['<', '<=', '>', '>='] as const),
    value: fc.oneof(pick(STRINGS), pick(NUMBERS)),
  }),
  fc.record({
    op: fc.constant('in' as const),
    value: fc.array(fc.oneof(pick(STRINGS), pick(NUMBERS)), { minLength: 1, maxLength: 3 }),
  }),
  fc.record({ op: fc.constant('contains' as const), value: pick(['ar', 'a', 'old', 'é']) }),
  fc.record({ op: pick(['exists', 'not_exists'] as const) }),
);

const propertyArb = fc
  .tuple(
    pick(['price', 'color', 'flag', 'meta.tier', 'missing', 'list', 'nothing'] as const),
    fc.boolean(),
    comparisonArb,
  )
  .map(([path, asArray, comparison]) => ({
    path: asArray ? path.split('.') : path,
    ...comparison,
  }));

/** An event filter: each field present now and then. */
export const eventFilterArb = fc
  .record({
    eventName: optional(pick([...EVENT_NAMES, 'Nope'])),
    channel: optional(pick(['online', 'offline'] as const)),
    storeId: optional(pick(STORES)),
    productId: optional(pick(SKUS)),
    category: optional(pick(CATEGORIES)),
    properties: optional(fc.array(propertyArb, { minLength: 1, maxLength: 2 })),
  })
  .map(defined);

const traitArb = fc
  .tuple(pick(TRAITS), comparisonArb)
  .map(([trait, comparison]) => ({ type: 'trait' as const, trait, ...comparison }));
const eventArb = fc
  .record({
    type: fc.constant('event' as const),
    filter: eventFilterArb,
    count: optional(
      fc.record({
        op: pick(['at_least', 'at_most', 'exactly'] as const),
        n: fc.integer({ min: 0, max: 3 }),
      }),
    ),
    window: optional(windowArb),
  })
  .map(defined);
const purchaseArb = fc
  .record({
    type: fc.constant('purchase' as const),
    metric: pick(['orders', 'revenue', 'average_basket'] as const),
    op: pick(['=', '!=', '<', '<=', '>', '>='] as const),
    value: pick([0, 1, 2, 5, 10.5, 20, 100, 123.45, -1]),
    window: optional(windowArb),
    channel: optional(pick(['online', 'offline'] as const)),
    storeId: optional(pick(STORES)),
  })
  .map(defined);
/** A sequence step: looser than an event filter, or sequences would rarely match. */
const stepArb = fc
  .record({
    eventName: optional(pick(EVENT_NAMES)),
    channel: optional(pick(['online', 'offline'] as const)),
    category: optional(pick(CATEGORIES)),
    properties: optional(fc.array(propertyArb, { minLength: 1, maxLength: 1 })),
  })
  .map(defined);
const sequenceArb = fc
  .record({
    type: fc.constant('sequence' as const),
    first: stepArb,
    // biome-ignore lint/suspicious/noThenProperty: the sequence step the schema names `then`
    then: stepArb,
    withinDays: pick([1, 7, 30]),
    sameCategory: optional(fc.boolean()),
    window: optional(windowArb),
  })
  .map(defined);
const consentArb = fc.record({
  type: fc.constant('consent' as const),
  purpose: pick(PURPOSES),
  granted: fc.boolean(),
});
const segmentArb = fc.record({
  type: fc.constant('segment' as const),
  id: pick(Object.keys(SAVED)),
});

/** A leaf condition of any kind. */
export const leafArb: fc.Arbitrary<SegmentCondition> = fc.oneof(
  traitArb,
  eventArb,
  purchaseArb,
  sequenceArb,
  consentArb,
  segmentArb,
);

/** A condition tree up to four levels deep. */
export const conditionArb: fc.Arbitrary<SegmentCondition> = fc.letrec<{ node: SegmentCondition }>(
  (tie) => ({
    node: fc.oneof(
      { maxDepth: 3, depthIdentifier: 'segment-tree' },
      leafArb,
      fc.record({
        type: pick(['and', 'or'] as const),
        conditions: fc.array(tie('node'), { minLength: 1, maxLength: 3 }),
      }),
      fc.record({ type: fc.constant('not' as const), condition: tie('node') }),
    ),
  }),
).node;
