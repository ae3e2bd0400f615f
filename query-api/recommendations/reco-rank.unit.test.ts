import { describe, expect, it } from 'vitest';
import { DEFAULT_RECOMMENDATION_SETTINGS } from '../../schemas/recommendations.js';
import {
  type Anchor,
  anchorsFrom,
  type Candidate,
  type Interaction,
  personalItems,
} from './reco-rank.js';

const settings = { ...DEFAULT_RECOMMENDATION_SETTINGS, similarityShare: 0.2, revisitScore: 0.02 };

function anchor(
  sku: string,
  category: string,
  interactions: number,
  more: Partial<Anchor> = {},
): Anchor {
  return {
    sku,
    name: `name of ${sku}`,
    category,
    weight: interactions,
    interactions,
    kind: 1,
    channel: 'online',
    boughtRecently: false,
    seenLately: false,
    ...more,
  };
}

const item = (
  source: Candidate['source'],
  sku: string,
  category: string,
  score: number,
  via = '',
) => ({ source, sku, via, score, name: `name of ${sku}`, category }) satisfies Candidate;

describe('personalItems', () => {
  it('weighs each category by its share of the profile interactions, and each item by its share of the category', () => {
    const anchors = [anchor('s1', 'shoes', 3), anchor('t1', 'tea', 1)];
    const ranked = personalItems(
      anchors,
      [
        item('category', 's2', 'shoes', 0.1),
        item('category', 't2', 'tea', 0.3),
        item('category', 'c1', 'coffee', 0.9),
      ],
      new Set(),
      settings,
    );
    // 0.8 × 3/4 × 0.1 = 0.06 and 0.8 × 1/4 × 0.3 = 0.06: a tie, broken by sku; coffee was never shopped.
    expect(ranked.map((r) => [r.sku, r.score])).toEqual([
      ['s2', 0.06],
      ['t2', 0.06],
    ]);
    expect(ranked[0]?.reason).toEqual({
      type: 'favourite_category',
      text: 'popular in shoes; you viewed name of s1 online',
      because: { sku: 's1', name: 'name of s1', channel: 'online' },
    });
  });

  it('adds similarity and a revisit, gives the revisit as the reason, and leaves out what is excluded', () => {
    const anchors = [
      anchor('s1', 'shoes', 1, { seenLately: true }),
      anchor('s3', 'shoes', 1, { kind: 3, channel: 'offline' }),
    ];
    const ranked = personalItems(
      anchors,
      [
        item('category', 's1', 'shoes', 0.05),
        item('self', 's1', 'shoes', 1),
        item('similar', 'b1', 'bags', 0.5, 's3'),
        item('similar', 's4', 'shoes', 0.5, 's3'),
        item('category', 's4', 'shoes', 0.01),
      ],
      new Set(['s4']),
      settings,
    );
    expect(ranked.map((r) => [r.sku, r.score, r.reason.type])).toEqual([
      // 0.8 × 1 × 0.05 + 0.02
      ['s1', 0.06, 'viewed'],
      // 0.2 × 1/2 × 0.5
      ['b1', 0.05, 'similar_to_bought'],
    ]);
    expect(ranked[1]?.reason.text).toBe('because you bought name of s3 in store');
  });
});

describe('anchorsFrom', () => {
  const day = 86_400_000;
  const reference = Date.parse('2026-04-01T00:00:00Z');
  const event = (
    eventId: string,
    eventName: string,
    productIds: string[],
    daysBefore: number,
    channel: Interaction['channel'] = 'online',
  ): Interaction => ({ eventId, eventName, productIds, channel, at: reference - daysBefore * day });
  const describeSku = (sku: string) => ({ name: `name of ${sku}`, category: 'shoes' });

  it('adds up each item: decayed weights, its strongest kind and where, what was bought or looked at lately', () => {
    const anchors = anchorsFrom(
      [
        event('e1', 'Product Viewed', ['s1'], 30),
        event('e2', 'Product Added', ['s1'], 0),
        // Delivered twice: counted once.
        event('e2', 'Product Added', ['s1'], 0),
        event('e3', 'Order Completed', ['s1', 's2'], 40, 'offline'),
        event('e4', 'Order Completed', ['s2'], 2, 'offline'),
        event('e5', 'Checkout Started', ['s2'], 1),
        event('e6', 'Product Viewed', [''], 1),
      ],
      reference,
      { ...settings, halfLifeDays: 30, excludeBoughtDays: 30, revisitDays: 14 },
      describeSku,
    );
    expect(anchors).toEqual([
      {
        sku: 's1',
        name: 'name of s1',
        category: 'shoes',
        // A view 30 days back (one half-life: 1 × 0.5), an add to cart now (3), a purchase 40 days back.
        weight: expect.closeTo(0.5 + 3 + 5 * 2 ** (-40 / 30), 9),
        interactions: 3,
        kind: 3,
        channel: 'offline',
        boughtRecently: false,
        seenLately: true,
      },
      {
        sku: 's2',
        name: 'name of s2',
        category: 'shoes',
        weight: expect.closeTo(5 * 2 ** (-40 / 30) + 5 * 2 ** (-2 / 30), 9),
        interactions: 2,
        kind: 3,
        channel: 'offline',
        boughtRecently: true,
        seenLately: false,
      },
    ]);
  });
});
