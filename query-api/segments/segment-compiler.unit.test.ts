import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ErrorCodes, isTandemError } from '../../schemas/errors.js';
import {
  MAX_CONDITION_DEPTH,
  SegmentCondition,
  SegmentDefinition,
} from '../../schemas/segment-definition.js';
import { clickhouseTime } from '../../warehouse/warehouse.js';
import { compileSegment, MAX_COMPILED_CONDITIONS } from './segment-compiler.js';
import { previewSql } from './segment-preview.js';

const NOW = new Date('2026-03-01T12:00:00Z');
const compile = (
  condition: SegmentCondition,
  lookup?: (id: string) => SegmentDefinition | undefined,
) => compileSegment(condition, { database: 'tandem', now: NOW, lookup });
const consent: SegmentCondition = { type: 'consent', purpose: 'marketing_email', granted: true };

describe('SegmentDefinition', () => {
  const issues = (input: unknown) => {
    const result = SegmentDefinition.safeParse(input);
    return result.success ? [] : result.error.issues.map((i) => [i.path.join('.'), i.message]);
  };
  const named = (condition: unknown) => ({ name: 'n', condition });

  it.each([
    [
      { type: 'and', conditions: [] },
      'condition.conditions',
      'conditions of and needs at least one condition',
    ],
    [
      { type: 'nope' },
      'condition.type',
      'type must be one of and, or, not, trait, event, purchase, sequence, consent, segment',
    ],
    [
      { type: 'trait', trait: 'city', op: 'in', value: 'Paris' },
      'condition.value',
      'value must be an array of strings and numbers for op in',
    ],
    [
      { type: 'trait', trait: 'city', op: 'exists', value: 1 },
      'condition.value',
      'value must be left out for op exists',
    ],
    [
      { type: 'trait', trait: 'city', op: '<', value: true },
      'condition.value',
      'value must be a string or a number for op <',
    ],
    [{ type: 'trait', trait: '', op: 'exists' }, 'condition.trait', 'trait must not be empty'],
    [
      { type: 'trait', trait: 'city', op: 'like', value: 'x' },
      'condition.op',
      'op must be one of =, !=, <, <=, >, >=, in, contains, exists, not_exists',
    ],
    [
      { type: 'event', filter: { channel: 'tv' } },
      'condition.filter.channel',
      'channel must be one of online, offline',
    ],
    [
      { type: 'event', filter: {}, count: { op: 'at_least', n: -1 } },
      'condition.count.n',
      'count.n must be at least 0',
    ],
    [
      { type: 'event', filter: {}, window: { lastDays: 0 } },
      'condition.window.lastDays',
      'window.lastDays must be at least 1',
    ],
    [
      { type: 'event', filter: {}, window: {} },
      'condition.window',
      'window needs lastDays, or from and to',
    ],
    [
      { type: 'event', filter: {}, window: { from: '2026-02-01', to: '2026-01-01' } },
      'condition.window.to',
      'window.to must be after window.from',
    ],
    [
      { type: 'event', filter: {}, window: { from: 'yesterday', to: '2026-01-01' } },
      'condition.window.from',
      'window.from must be an ISO-8601 date or time, e.g. 2026-01-31 or 2026-01-31T12:00:00Z',
    ],
    [
      { type: 'event', filter: { properties: [{ path: 'a', op: 'contains', value: '' }] } },
      'condition.filter.properties.0.value',
      'value must be a non-empty string for op contains',
    ],
    [
      { type: 'event', filter: { properties: [{ path: 'a..b', op: 'exists' }] } },
      'condition.filter.properties.0.path',
      'path must be up to 8 non-empty keys joined by dots (a.b, not a..b)',
    ],
    [
      { type: 'purchase', metric: 'revenue', op: '>', value: 10.005 },
      'condition.value',
      'value must have at most 2 decimals (an amount in currency units)',
    ],
    [
      { type: 'purchase', metric: 'basket', op: '>', value: 1 },
      'condition.metric',
      'metric must be one of orders, revenue, average_basket',
    ],
    [
      {
        type: 'sequence',
        first: {},
        // biome-ignore lint/suspicious/noThenProperty: the sequence step the schema names `then`
        then: {},
        withinDays: 0,
      },
      'condition.withinDays',
      'withinDays must be at least 1',
    ],
    [
      { type: 'consent', purpose: 'Email', granted: true },
      'condition.purpose',
      'purpose must be snake_case',
    ],
    [
      { type: 'consent', purpose: 'email', granted: 'yes' },
      'condition.granted',
      'granted must be true or false',
    ],
    [
      { type: 'not', condition: { type: 'segment', id: '' } },
      'condition.condition.id',
      'id must not be empty',
    ],
  ])('refuses %j, naming %s', (condition, path, message) => {
    expect(issues(named(condition))).toContainEqual([path, message]);
  });

  it('names the name, and refuses keys it does not know', () => {
    expect(issues({ name: '', condition: consent })).toEqual([['name', 'name must not be empty']]);
    expect(issues(named({ ...consent, purposes: 'x' }))).toEqual([
      ['condition', expect.stringContaining('purposes')],
    ]);
  });

  it(`refuses conditions nested deeper than ${MAX_CONDITION_DEPTH} levels, at the first too deep`, () => {
    let condition: SegmentCondition = consent;
    for (let depth = 1; depth < MAX_CONDITION_DEPTH; depth++)
      condition = { type: 'not', condition };
    expect(issues(named(condition))).toEqual([]);
    const path = ['condition', ...Array(MAX_CONDITION_DEPTH).fill('condition')].join('.');
    expect(issues(named({ type: 'not', condition }))).toEqual([
      [path, `conditions nest deeper than ${MAX_CONDITION_DEPTH} levels here`],
    ]);
  });
});

describe(compileSegment.name, () => {
  /** Strings no SQL we write could hold: a non-ASCII mark and quotes. */
  const marked = fc
    .string({ minLength: 1, maxLength: 10 })
    .map((s) => `§${s.replaceAll('.', '')}'"\\`);
  const big = fc.integer({ min: 1_000_001, max: 999_999_999 }).map((n) => n + 0.25);
  const time = fc
    .integer({ min: Date.UTC(2020, 0, 1), max: Date.UTC(2030, 0, 1) })
    .map((ms) => new Date(ms));
  const value = fc.oneof(marked, big);
  const filter = fc.record({
    eventName: marked,
    storeId: marked,
    productId: marked,
    category: marked,
    properties: fc.array(
      fc.record({
        path: fc.array(marked, { minLength: 1, maxLength: 3 }),
        op: fc.constantFrom('=', '!=', '<', '>='),
        value,
      }),
      { maxLength: 2 },
    ),
  });
  const window = fc.tuple(time, time).map(([a, b]) => ({
    from: new Date(Math.min(a.getTime(), b.getTime())).toISOString(),
    to: new Date(Math.max(a.getTime(), b.getTime()) + 1).toISOString(),
  }));
  const leaf: fc.Arbitrary<SegmentCondition> = fc.oneof(
    fc.record({
      type: fc.constant('trait' as const),
      trait: marked,
      op: fc.constantFrom('=' as const, '!=' as const, '>' as const),
      value,
    }),
    fc.record({
      type: fc.constant('trait' as const),
      trait: marked,
      op: fc.constant('in' as const),
      value: fc.array(value, { minLength: 1, maxLength: 3 }),
    }),
    fc.record({
      type: fc.constant('trait' as const),
      trait: marked,
      op: fc.constant('contains' as const),
      value: marked,
    }),
    fc.record({
      type: fc.constant('event' as const),
      filter,
      window,
      count: fc.record({
        op: fc.constantFrom('at_least' as const, 'at_most' as const, 'exactly' as const),
        n: fc.integer({ min: 100_001, max: 1_000_000 }),
      }),
    }),
    fc.record({
      type: fc.constant('purchase' as const),
      metric: fc.constantFrom('orders' as const, 'revenue' as const, 'average_basket' as const),
      op: fc.constantFrom('>' as const, '<=' as const),
      value: big,
      storeId: marked,
      window,
    }),
    fc.record({
      type: fc.constant('sequence' as const),
      first: filter,
      // biome-ignore lint/suspicious/noThenProperty: the sequence step the schema names `then`
      then: filter,
      withinDays: fc.integer({ min: 1, max: 365 }),
      sameCategory: fc.boolean(),
      window,
    }),
    fc.record({
      type: fc.constant('consent' as const),
      purpose: fc.stringMatching(/^[a-z][a-z0-9_]{11,20}$/),
      granted: fc.boolean(),
    }),
  );
  const tree = fc
    .array(leaf, { minLength: 1, maxLength: 4 })
    .map((conditions): SegmentCondition => ({ type: 'or', conditions }));

  /** The strings and the numbers with a fraction a marketer wrote into `condition`. */
  function userValues(node: unknown, out: unknown[] = []): unknown[] {
    if (Array.isArray(node)) for (const item of node) userValues(item, out);
    else if (node && typeof node === 'object')
      for (const [key, item] of Object.entries(node))
        if (!['type', 'op', 'metric', 'granted', 'sameCategory'].includes(key) && key !== 'count')
          userValues(item, out);
    if (typeof node === 'string' || (typeof node === 'number' && !Number.isInteger(node)))
      out.push(node);
    return out;
  }

  it('never writes a user value into the SQL text: every one is a query parameter', () => {
    fc.assert(
      fc.property(tree, time, fc.option(time, { nil: undefined }), (condition, now, asOf) => {
        expect(SegmentCondition.safeParse(condition).success).toBe(true);
        const compiled = compileSegment(condition, { database: 'tandem', now, asOf });
        const { sql } = previewSql(compiled, { database: 'tandem', asOf });
        expect(sql).toMatch(/^[\x20-\x7e\n]*$/);
        for (const written of [
          ...userValues(condition),
          ...[now, asOf].flatMap((t) => (t ? [clickhouseTime(t)] : [])),
        ])
          expect(sql).not.toContain(String(written));
        expect(JSON.stringify(compiled.params)).not.toBe('{}');
      }),
      { numRuns: 300 },
    );
  });

  it('takes counts and days as parameters too: the SQL depends on the shape of the tree only', () => {
    const sequence = (withinDays: number, lastDays: number): SegmentCondition => ({
      type: 'sequence',
      first: {},
      // biome-ignore lint/suspicious/noThenProperty: the sequence step the schema names `then`
      then: {},
      withinDays,
      window: { lastDays },
    });
    const event = (n: number): SegmentCondition => ({
      type: 'event',
      filter: {},
      count: { op: 'at_least', n },
    });
    expect(compile(sequence(7, 30)).sql).toBe(compile(sequence(8, 31)).sql);
    expect(compile(event(2)).sql).toBe(compile(event(9)).sql);
  });

  it('reads a time window up to asOf when asOf is given', () => {
    const asOf = new Date('2026-01-15T00:00:00Z');
    const { params } = compileSegment(
      { type: 'event', filter: {}, window: { lastDays: 7 } },
      { database: 'tandem', now: NOW, asOf },
    );
    expect(Object.values(params)).toEqual(
      expect.arrayContaining([clickhouseTime('2026-01-08T00:00:00Z'), clickhouseTime(asOf)]),
    );
  });

  describe('segment references', () => {
    const saved = (entries: Record<string, SegmentCondition>) => (id: string) =>
      entries[id] ? { name: id, condition: entries[id] } : undefined;
    const ref = (id: string): SegmentCondition => ({ type: 'segment', id });
    const failure = (
      condition: SegmentCondition,
      lookup?: (id: string) => SegmentDefinition | undefined,
    ) => {
      try {
        compile(condition, lookup);
      } catch (error) {
        if (isTandemError(error, ErrorCodes.VALIDATION))
          return { message: error.message, issues: error.details.issues };
        throw error;
      }
      throw new Error('compiled');
    };

    it('inlines a saved segment, and one reached twice without a cycle', () => {
      const lookup = saved({
        a: consent,
        b: { type: 'and', conditions: [ref('a'), { type: 'not', condition: ref('a') }] },
      });
      expect(compile(ref('b'), lookup).sql).toBe(
        compile({ type: 'and', conditions: [consent, { type: 'not', condition: consent }] }).sql,
      );
    });

    it('refuses a cycle, naming the chain and where it starts', () => {
      const lookup = saved({
        a: { type: 'or', conditions: [consent, ref('b')] },
        b: { type: 'not', condition: ref('a') },
      });
      expect(failure({ type: 'and', conditions: [consent, ref('a')] }, lookup)).toEqual({
        message: 'condition.conditions.1.id: segment a refers to itself: a → b → a',
        issues: [
          { path: 'condition.conditions.1.id', message: 'segment a refers to itself: a → b → a' },
        ],
      });
      expect(failure(ref('self'), saved({ self: ref('self') })).message).toContain('self → self');
    });

    it('refuses an unknown id, inside a saved segment too', () => {
      expect(failure(ref('ghost'), saved({})).issues).toEqual([
        { path: 'condition.id', message: 'segment ghost is not a saved segment' },
      ]);
      expect(failure(ref('ghost')).message).toContain('segment ghost is not a saved segment');
      expect(
        failure({ type: 'not', condition: ref('a') }, saved({ a: ref('ghost') })).issues,
      ).toEqual([
        {
          path: 'condition.condition.id',
          message: 'segment ghost is not a saved segment (in segment a)',
        },
      ]);
    });

    it(`refuses more than ${MAX_COMPILED_CONDITIONS} conditions once references are inlined`, () => {
      const entries: Record<string, SegmentCondition> = { s0: consent };
      for (let i = 1; i <= 10; i++)
        entries[`s${i}`] = { type: 'or', conditions: [ref(`s${i - 1}`), ref(`s${i - 1}`)] };
      expect(failure(ref('s10'), saved(entries)).message).toContain(
        `more than ${MAX_COMPILED_CONDITIONS} conditions`,
      );
    });

    it(`refuses nesting deeper than ${MAX_CONDITION_DEPTH} levels once references are inlined`, () => {
      const entries: Record<string, SegmentCondition> = { s0: consent };
      for (let i = 1; i <= 20; i++)
        entries[`s${i}`] = { type: 'not', condition: { type: 'not', condition: ref(`s${i - 1}`) } };
      expect(failure(ref('s20'), saved(entries)).message).toContain(
        `deeper than ${MAX_CONDITION_DEPTH} levels`,
      );
    });
  });

  it('refuses a database name that is not a plain identifier', () => {
    expect(() => compileSegment(consent, { database: 'tandem; DROP', now: NOW })).toThrow(
      /not a database name/,
    );
  });
});
