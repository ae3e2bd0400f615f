/**
 * Ranking, in plain functions over what the queries read: the personal
 * items (each scored by the anchors that lead to it, with the one that
 * counts most as its reason), then the popularity lists for the rest.
 */
import type {
  RecommendationReason,
  RecommendationSettings,
  RecommendedItem,
} from '../../schemas/recommendations.js';

/** One item the profile interacted with: its decayed weight, strongest kind, and that kind's channel. */
export interface Anchor {
  readonly sku: string;
  readonly weight: number;
  /** 1 viewed, 2 carted, 3 bought. */
  readonly kind: 1 | 2 | 3;
  readonly channel: 'online' | 'offline';
  readonly bought_recently: number;
}

export interface Candidate {
  /** A neighbour of an anchor, an anchor itself, or a popularity list. */
  readonly source: 'similar' | 'self' | 'store' | 'city' | 'all';
  readonly sku: string;
  readonly via: string;
  readonly score: number;
  readonly name: string;
  readonly category: string;
  readonly viaName: string;
}

/** Items scored by the anchors that lead to them, best first, with the anchor that counts most as the reason. */
export function personalItems(
  anchors: readonly Anchor[],
  candidates: readonly Candidate[],
  exclude: ReadonlySet<string>,
): RecommendedItem[] {
  const bySku = new Map(anchors.map((anchor) => [anchor.sku, anchor]));
  const scored = new Map<string, { score: number; best: number; via: Candidate }>();
  for (const candidate of candidates) {
    if (exclude.has(candidate.sku)) continue;
    let contribution: number;
    if (candidate.source === 'similar') {
      const anchor = bySku.get(candidate.via);
      if (!anchor) continue;
      contribution = anchor.weight * candidate.score;
    } else if (candidate.source === 'self') {
      // What they looked at or carted and did not buy is worth showing again (where the store sells it).
      const anchor = bySku.get(candidate.sku);
      if (!anchor || anchor.kind === 3) continue;
      contribution = anchor.weight;
    } else continue;
    const entry = scored.get(candidate.sku);
    if (!entry)
      scored.set(candidate.sku, { score: contribution, best: contribution, via: candidate });
    else {
      entry.score += contribution;
      if (contribution > entry.best) {
        entry.best = contribution;
        entry.via = candidate;
      }
    }
  }
  return [...scored.entries()]
    .sort((a, b) => b[1].score - a[1].score || a[0].localeCompare(b[0]))
    .map(([sku, { score, via }]) => ({
      sku,
      name: via.name,
      category: via.category,
      score: round(score),
      reason: personalReason(via, bySku),
    }));
}

/** "you viewed X online", "you added X to your cart online", "you bought X in store". */
function did(kind: 1 | 2 | 3, item: string, channel: 'online' | 'offline'): string {
  const where = channel === 'online' ? 'online' : 'in store';
  if (kind === 2) return `you added ${item} to your cart ${where}`;
  return `you ${kind === 3 ? 'bought' : 'viewed'} ${item} ${where}`;
}

const SIMILAR = { 1: 'similar_to_viewed', 2: 'similar_to_carted', 3: 'similar_to_bought' } as const;

function personalReason(
  via: Candidate,
  anchors: ReadonlyMap<string, Anchor>,
): RecommendationReason {
  const self = via.source === 'self';
  const anchorSku = self ? via.sku : via.via;
  const anchor = anchors.get(anchorSku) as Anchor;
  const because = { sku: anchorSku, name: self ? via.name : via.viaName, channel: anchor.channel };
  if (self)
    return {
      type: anchor.kind === 2 ? 'carted' : 'viewed',
      text: did(anchor.kind, 'it', anchor.channel),
      because,
    };
  return {
    type: SIMILAR[anchor.kind],
    text: `because ${did(anchor.kind, because.name, anchor.channel)}`,
    because,
  };
}

/** The personal items, then popularity (store, city, overall) for the rest, no item twice. */
export function fill(
  personal: readonly RecommendedItem[],
  candidates: readonly Candidate[],
  exclude: ReadonlySet<string>,
  limit: number,
  settings: RecommendationSettings,
): RecommendedItem[] {
  const items = personal.slice(0, limit);
  const taken = new Set(items.map((item) => item.sku));
  const lately =
    settings.popularityDays === 7 ? 'this week' : `in the last ${settings.popularityDays} days`;
  const reasons: Record<'store' | 'city' | 'all', RecommendationReason> = {
    store: { type: 'popular_at_store', text: `popular at this store ${lately}` },
    city: { type: 'popular_in_city', text: `popular in this city ${lately}` },
    all: { type: 'popular', text: 'popular across our stores and shop' },
  };
  for (const source of ['store', 'city', 'all'] as const) {
    const ranked = candidates
      .filter((c) => c.source === source && !taken.has(c.sku) && !exclude.has(c.sku))
      .sort((a, b) => b.score - a.score || a.sku.localeCompare(b.sku));
    for (const candidate of ranked) {
      if (items.length >= limit) return items;
      taken.add(candidate.sku);
      items.push({
        sku: candidate.sku,
        name: candidate.name,
        category: candidate.category,
        score: round(candidate.score),
        reason: reasons[source],
      });
    }
  }
  return items;
}

const round = (n: number) => Math.round(n * 10_000) / 10_000;
