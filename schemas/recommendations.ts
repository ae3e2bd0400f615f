import { z } from 'zod';

/**
 * How the recommendation model is trained. Every field has a default; the
 * defaults suit a chain's daily rhythm (a quarter of history, a month's
 * half-life, this week's sales for popularity).
 */
export const RecommendationSettings = z.strictObject({
  /** Days of history that train the item-to-item model, ending at the newest event. */
  windowDays: z.number().int().min(1).max(3650).default(90),
  /** An interaction loses half its weight every this many days. */
  halfLifeDays: z.number().positive().max(3650).default(30),
  /** Weight of one view, one add to cart and one purchase (of a line) of an item. */
  weights: z
    .strictObject({
      viewed: z.number().min(0).default(1),
      carted: z.number().min(0).default(3),
      bought: z.number().min(0).default(5),
    })
    .prefault({}),
  /** A profile's strongest items that enter the model; caps the pairs one heavy shopper adds. */
  itemsPerProfile: z.number().int().min(2).max(1000).default(50),
  /** Neighbours kept per item. */
  neighbours: z.number().int().min(1).max(1000).default(50),
  /** Profiles that must share a pair before it counts; one shopper's basket is an anecdote. */
  minSupport: z.number().int().min(1).max(1000).default(2),
  /**
   * How much of a personal score comes from item-to-item similarity (0–1);
   * the rest comes from what sells in the categories the profile shops, by
   * the share of its interactions in each.
   */
  similarityShare: z.number().min(0).max(1).default(0.2),
  /** Days during which an item viewed or carted and not bought is offered again. */
  revisitDays: z.number().int().min(0).max(3650).default(14),
  /**
   * What such an item adds to its score. Scores estimate how likely the next
   * purchase is the item, so 0.02 ranks it beside an item with a 2% chance.
   */
  revisitScore: z.number().min(0).max(1).default(0.02),
  /** Days of sales behind "popular at this store" and "popular in this city". */
  popularityDays: z.number().int().min(1).max(365).default(7),
  /** Items bought this recently are not recommended again. */
  excludeBoughtDays: z.number().int().min(0).max(3650).default(30),
});
export type RecommendationSettings = z.output<typeof RecommendationSettings>;

export const DEFAULT_RECOMMENDATION_SETTINGS: RecommendationSettings = RecommendationSettings.parse(
  {},
);

export const RecommendationContext = z.enum(['online', 'in_store']);
export type RecommendationContext = z.infer<typeof RecommendationContext>;

const Limit = z.coerce.number().int().min(1).max(100).default(10);
const StoreId = z.string().min(1).max(128);

export const ProfileRecommendationQuery = z.strictObject({
  limit: Limit,
  store: StoreId.optional(),
  context: RecommendationContext.default('online'),
});
export type ProfileRecommendationQuery = z.output<typeof ProfileRecommendationQuery>;

export const StoreRecommendationQuery = z.strictObject({ limit: Limit });

/** Why an item is recommended: the kind, in words, and the item that led to it. */
export const RecommendationReason = z.object({
  type: z.enum([
    'similar_to_viewed',
    'similar_to_carted',
    'similar_to_bought',
    'viewed',
    'carted',
    'favourite_category',
    'popular_at_store',
    'popular_in_city',
    'popular',
  ]),
  text: z.string(),
  because: z
    .object({
      sku: z.string(),
      name: z.string(),
      channel: z.enum(['online', 'offline']),
    })
    .optional(),
});
export type RecommendationReason = z.infer<typeof RecommendationReason>;

export const RecommendedItem = z.object({
  sku: z.string(),
  name: z.string(),
  category: z.string(),
  score: z.number(),
  reason: RecommendationReason,
});
export type RecommendedItem = z.infer<typeof RecommendedItem>;

export const ModelInfo = z.object({
  model: z.number().int(),
  trainedAt: z.string(),
  referenceAt: z.string(),
});

export const ProfileRecommendations = z.object({
  profileId: z.string(),
  personalized: z.boolean(),
  context: RecommendationContext,
  store: z.string().nullable(),
  items: z.array(RecommendedItem),
  model: ModelInfo,
});
export type ProfileRecommendations = z.infer<typeof ProfileRecommendations>;

export const StoreRecommendations = z.object({
  storeId: z.string(),
  items: z.array(RecommendedItem),
  model: ModelInfo,
});
export type StoreRecommendations = z.infer<typeof StoreRecommendations>;
