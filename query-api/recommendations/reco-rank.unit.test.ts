import { describe, expect, it } from 'vitest';
import { DEFAULT_RECOMMENDATION_SETTINGS } from '../../schemas/recommendations.js';
import { type Anchor, type Candidate, personalItems } from './reco-rank.js';

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
    bought_recently: 0,
    seen_lately: 0,
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
      anchor('s1', 'shoes', 1, { seen_lately: 1 }),
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
