/**
 * Ranking, in plain functions over what the queries read. A personal score
 * estimates how likely the profile's next purchase is the item, as a blend:
 * what sells in the categories the profile shops, each by its share of the
 * profile's interactions, and what is similar to the items it interacted
 * with (`similarityShare` of the score); plus a bonus for what it viewed or
 * carted lately and did not buy. The popularity lists fill the rest.
 */
import type {
  RecommendationReason,
  RecommendationSettings,
  RecommendedItem,
} from '../../schemas/recommendations.js';
import { INTERACTIONS } from './reco-model.js';

/** One item the profile interacted with: its decayed weight, strongest kind, and that kind's channel. */
export interface Anchor {
  readonly sku: string;
  readonly name: string;
  readonly category: string;
  readonly weight: number;
  /** Views, adds to cart and purchase lines of it, undecayed. */
  readonly interactions: number;
  /** 1 viewed, 2 carted, 3 bought. */
  readonly kind: Kind;
  readonly channel: Channel;
  /** Bought within `excludeBoughtDays`. */
  readonly boughtRecently: boolean;
  /** Viewed or carted within `revisitDays`. */
  readonly seenLately: boolean;
}

type Kind = 1 | 2 | 3;
type Channel = 'online' | 'offline';

/** One event of the profile that names products, as `product_interactions` holds it. */
export interface Interaction {
  readonly eventId: string;
  readonly productIds: readonly string[];
  readonly channel: Channel;
  /** Epoch milliseconds. */
  readonly at: number;
  readonly eventName: string;
}

const DAY_MS = 86_400_000;

/**
 * The profile's items from its interactions before `referenceAt` and since:
 * each item's weight decayed to the model's reference time as the model's
 * own (`decaySql`), its strongest kind and the channel of the newest of
 * that kind, and whether it was bought or looked at lately. An event read
 * twice (delivered twice, not yet merged away) counts once.
 */
export function anchorsFrom(
  interactions: readonly Interaction[],
  referenceAt: number,
  settings: RecommendationSettings,
  describe: (sku: string) => { readonly name: string; readonly category: string },
): Anchor[] {
  const kinds: Record<string, Kind> = {
    [INTERACTIONS.viewed]: 1,
    [INTERACTIONS.carted]: 2,
    [INTERACTIONS.bought]: 3,
  };
  const weights = {
    1: settings.weights.viewed,
    2: settings.weights.carted,
    3: settings.weights.bought,
  };
  const seen = new Set<string>();
  const items = new Map<
    string,
    {
      weight: number;
      interactions: number;
      kind: Kind;
      channel: Channel;
      at: number;
      bought: number;
      looked: number;
    }
  >();
  for (const event of interactions) {
    const kind = kinds[event.eventName];
    if (kind === undefined || seen.has(event.eventId)) continue;
    seen.add(event.eventId);
    const age = Math.max(0, referenceAt - event.at) / DAY_MS;
    const weight = weights[kind] * Math.exp((-Math.LN2 * age) / settings.halfLifeDays);
    for (const sku of event.productIds) {
      if (!sku) continue;
      const item = items.get(sku);
      if (!item) {
        items.set(sku, {
          weight,
          interactions: 1,
          kind,
          channel: event.channel,
          at: event.at,
          bought: kind === 3 ? event.at : 0,
          looked: kind < 3 ? event.at : 0,
        });
        continue;
      }
      item.weight += weight;
      item.interactions++;
      if (kind > item.kind || (kind === item.kind && event.at > item.at)) {
        item.kind = kind;
        item.channel = event.channel;
        item.at = event.at;
      }
      if (kind === 3) item.bought = Math.max(item.bought, event.at);
      else item.looked = Math.max(item.looked, event.at);
    }
  }
  return [...items].map(([sku, item]) => ({
    sku,
    ...describe(sku),
    weight: item.weight,
    interactions: item.interactions,
    kind: item.kind,
    channel: item.channel,
    boughtRecently: item.bought > referenceAt - settings.excludeBoughtDays * DAY_MS,
    seenLately: item.looked > referenceAt - settings.revisitDays * DAY_MS,
  }));
}

export interface Candidate {
  /**
   * A neighbour of an anchor (score: its share of the anchor's neighbours'
   * similarity), an anchor itself, an item of a category the profile shops
   * (score: its share of the category's sales), or a popularity list.
   */
  readonly source: 'similar' | 'self' | 'category' | 'store' | 'city' | 'all';
  readonly sku: string;
  /** The anchor of a `similar` candidate. */
  readonly via: string;
  readonly score: number;
  readonly name: string;
  readonly category: string;
}

type Why =
  | { readonly kind: 'revisit'; readonly anchor: Anchor }
  | { readonly kind: 'similar' | 'category'; readonly anchor: Anchor };

/** Items by personal score, best first, each with the part that counts most as its reason. */
export function personalItems(
  anchors: readonly Anchor[],
  candidates: readonly Candidate[],
  exclude: ReadonlySet<string>,
  settings: RecommendationSettings,
): RecommendedItem[] {
  const bySku = new Map(anchors.map((anchor) => [anchor.sku, anchor]));
  let total = 0;
  const categories = new Map<string, { interactions: number; strongest: Anchor }>();
  for (const anchor of anchors) {
    total += anchor.interactions;
    const shopped = categories.get(anchor.category);
    if (!shopped)
      categories.set(anchor.category, { interactions: anchor.interactions, strongest: anchor });
    else {
      shopped.interactions += anchor.interactions;
      if (anchor.weight > shopped.strongest.weight) shopped.strongest = anchor;
    }
  }
  const share = settings.similarityShare;
  const scored = new Map<
    string,
    { score: number; best: number; why: Why; name: string; category: string }
  >();
  for (const candidate of candidates) {
    if (exclude.has(candidate.sku)) continue;
    let part: number;
    let why: Why;
    if (candidate.source === 'category') {
      const shopped = categories.get(candidate.category);
      if (!shopped) continue;
      part = (1 - share) * (shopped.interactions / total) * candidate.score;
      why = { kind: 'category', anchor: shopped.strongest };
    } else if (candidate.source === 'similar') {
      const anchor = bySku.get(candidate.via);
      if (!anchor) continue;
      part = share * (anchor.interactions / total) * candidate.score;
      why = { kind: 'similar', anchor };
    } else if (candidate.source === 'self') {
      // What they looked at or carted lately and did not buy is worth showing again (where the store sells it).
      const anchor = bySku.get(candidate.sku);
      if (!anchor || anchor.kind === 3 || !anchor.seenLately) continue;
      part = settings.revisitScore;
      why = { kind: 'revisit', anchor };
    } else continue;
    const entry = scored.get(candidate.sku);
    if (!entry) {
      const { name, category } = candidate;
      scored.set(candidate.sku, { score: part, best: part, why, name, category });
      continue;
    }
    entry.score += part;
    // Having looked at the item itself is the reason that says most; otherwise the bigger part.
    if (entry.why.kind !== 'revisit' && (why.kind === 'revisit' || part > entry.best)) {
      entry.best = part;
      entry.why = why;
    }
  }
  return [...scored.entries()]
    .sort((a, b) => b[1].score - a[1].score || a[0].localeCompare(b[0]))
    .map(([sku, { score, why, name, category }]) => ({
      sku,
      name,
      category,
      score: round(score),
      reason: personalReason(why, category),
    }));
}

/** "you viewed X online", "you added X to your cart online", "you bought X in store". */
function did(kind: Kind, item: string, channel: Channel): string {
  const where = channel === 'online' ? 'online' : 'in store';
  if (kind === 2) return `you added ${item} to your cart ${where}`;
  return `you ${kind === 3 ? 'bought' : 'viewed'} ${item} ${where}`;
}

const SIMILAR = { 1: 'similar_to_viewed', 2: 'similar_to_carted', 3: 'similar_to_bought' } as const;

function personalReason(why: Why, category: string): RecommendationReason {
  const { anchor } = why;
  const because = { sku: anchor.sku, name: anchor.name, channel: anchor.channel };
  if (why.kind === 'revisit')
    return {
      type: anchor.kind === 2 ? 'carted' : 'viewed',
      text: did(anchor.kind, 'it', anchor.channel),
      because,
    };
  if (why.kind === 'category')
    return {
      type: 'favourite_category',
      text: `popular in ${category}; ${did(anchor.kind, anchor.name, anchor.channel)}`,
      because,
    };
  return {
    type: SIMILAR[anchor.kind],
    text: `because ${did(anchor.kind, anchor.name, anchor.channel)}`,
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
