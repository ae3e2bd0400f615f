/**
 * Answering a recommendation request from the newest committed model.
 *
 * A profile that consents to personalization now gets items ranked from what
 * it viewed, carted and bought (online and in store, read from `events` at
 * request time, so a purchase a minute ago is already excluded): the best
 * sellers of the categories it shops, items similar to its own, and what it
 * looked at lately but has not bought (`reco-rank.ts`); the rest is filled with what
 * sells at the store, in its city, then overall. A profile that does not
 * consent gets the popularity list alone, built without reading anything of
 * theirs — the answer any shopper at that store would get. Consent is read
 * on every request, so a withdrawal applies to the next one.
 */
import { ErrorCodes, TandemError } from '../../schemas/errors.js';
import type {
  ProfileRecommendations,
  RecommendationContext,
  RecommendationSettings,
  StoreRecommendations,
} from '../../schemas/recommendations.js';
import { RECO_MODELS } from '../../warehouse/recommendation-tables.js';
import { selectRows } from '../../warehouse/select.js';
import { clickhouseTime, type Warehouse } from '../../warehouse/warehouse.js';
import { catalogCache, type ModelCatalog, neighbourCache } from './reco-catalog.js';
import {
  type CommittedModel,
  decaySql,
  INTERACTIONS,
  interactionWeightSql,
  toCommitted,
} from './reco-model.js';
import { type Anchor, type Candidate, fill, personalItems } from './reco-rank.js';

export interface ServeDeps {
  readonly warehouse: Warehouse;
  readonly settings: RecommendationSettings;
  /** The newest model's catalogue and popularity lists, read once per model. */
  readonly catalog: (model: number) => Promise<ModelCatalog>;
  /** The newest model's neighbour lists, by item, kept once read. */
  readonly neighbours: ReturnType<typeof neighbourCache>;
}

/** What answering needs, with its per-model cache; one per process. */
export function recommender(warehouse: Warehouse, settings: RecommendationSettings): ServeDeps {
  return {
    warehouse,
    settings,
    catalog: catalogCache(warehouse),
    neighbours: neighbourCache(warehouse),
  };
}

export interface ProfileRequest {
  readonly profileId: string;
  readonly limit: number;
  readonly store: string | undefined;
  readonly context: RecommendationContext;
}

interface Subject {
  readonly status: string;
  readonly merged_into: string;
  readonly personalize: number;
  readonly preferred_store: string;
  readonly model: number;
  readonly trained_at: string;
  readonly reference_at: string;
}

/** Recommendations for a profile: personalised when it consents, popularity otherwise. */
export async function recommendForProfile(
  deps: ServeDeps,
  request: ProfileRequest,
): Promise<ProfileRecommendations> {
  const { profileId, subject } = await resolveSubject(deps, request.profileId);
  const model = modelOf(subject);
  const preferred = parseTrait(subject.preferred_store);
  const store =
    request.store ??
    (request.context === 'in_store' && subject.personalize > 0 ? preferred : undefined);
  const catalog = await deps.catalog(model.model);
  const anchors = subject.personalize > 0 ? await anchorsOf(deps, catalog, profileId, model) : [];
  const exclude = new Set(anchors.filter((a) => a.bought_recently > 0).map((a) => a.sku));
  const candidates = await candidatesFor(deps, catalog, model, store, {
    anchors,
    // Enough of each category's list to fill the answer from one category, past what is left out.
    depth: request.limit + exclude.size,
  });
  const personal = personalItems(anchors, candidates, exclude, deps.settings);
  const items = fill(personal, candidates, exclude, request.limit, deps.settings);
  return {
    profileId,
    personalized: items.some((item) => !item.reason.type.startsWith('popular')),
    context: request.context,
    store: store ?? null,
    items,
    model,
  };
}

/**
 * A store's own list: what sells there, then in its city, then overall,
 * among what it sells; without a store, what sells overall (the answer for
 * anyone, and the popularity baseline of the evaluation).
 */
export async function recommendForStore<Store extends string | undefined>(
  deps: ServeDeps,
  storeId: Store,
  limit: number,
): Promise<Omit<StoreRecommendations, 'storeId'> & { storeId: Store }> {
  const model = await newestModel(deps.warehouse);
  const candidates = await candidatesFor(deps, await deps.catalog(model.model), model, storeId);
  return { storeId, items: fill([], candidates, new Set(), limit, deps.settings), model };
}

async function resolveSubject(
  deps: ServeDeps,
  requested: string,
): Promise<{ profileId: string; subject: Subject }> {
  let profileId = requested;
  // A merged profile answers for its survivor; merges chain rarely, never in a loop.
  for (let hop = 0; hop < 8; hop++) {
    const subject = await readSubject(deps.warehouse, profileId);
    if (!subject)
      throw new TandemError(ErrorCodes.NOT_FOUND, `no profile ${requested}`, {
        profileId: requested,
      });
    if (subject.status !== 'merged' || !subject.merged_into) return { profileId, subject };
    profileId = subject.merged_into;
  }
  throw new TandemError(ErrorCodes.NOT_FOUND, `no profile ${requested}`, { profileId: requested });
}

/** The profile's state, its personalization consent now, its preferred store, and the newest model: one query. */
async function readSubject(warehouse: Warehouse, profileId: string): Promise<Subject | undefined> {
  const t = (name: string) => warehouse.table(name);
  const [row] = await selectRows<Subject>(
    warehouse.client,
    `SELECT status, merged_into,
       (SELECT count() FROM ${t('consents')}
        WHERE profile_id = {id:String} AND purpose = 'personalization' AND granted) AS personalize,
       (SELECT any(value) FROM ${t('profile_traits')}
        WHERE profile_id = {id:String} AND trait = 'preferred_store') AS preferred_store,
       m.model AS model, toString(m.trained_at) AS trained_at, toString(m.reference_at) AS reference_at
     FROM ${t('profiles')}
     CROSS JOIN (SELECT model, trained_at, reference_at FROM ${t(RECO_MODELS.name)}
                 ORDER BY model DESC LIMIT 1) AS m
     WHERE profile_id = {id:String}`,
    { id: profileId },
  );
  if (row) return row;
  // No row: either no such profile, or no model yet; tell them apart for the caller.
  await newestModel(warehouse);
  return undefined;
}

async function newestModel(warehouse: Warehouse): Promise<CommittedModel> {
  const [row] = await selectRows<{ model: number; trained_at: string; reference_at: string }>(
    warehouse.client,
    `SELECT model, toString(trained_at) AS trained_at, toString(reference_at) AS reference_at
     FROM ${warehouse.table(RECO_MODELS.name)} ORDER BY model DESC LIMIT 1`,
  );
  if (!row) throw noModel();
  return toCommitted(row);
}

function modelOf(subject: Subject): CommittedModel {
  if (!subject.model) throw noModel();
  return toCommitted(subject);
}

function noModel(): TandemError {
  return new TandemError(
    ErrorCodes.NOT_READY,
    'no recommendation model has been trained yet: it trains when the projector starts and on its schedule, or on POST /v1/recommendations/refresh',
  );
}

/** What the profile viewed, carted and bought in the model's window (and since), read from `events` now. */
async function anchorsOf(
  deps: ServeDeps,
  catalog: ModelCatalog,
  profileId: string,
  model: CommittedModel,
): Promise<Anchor[]> {
  const t = (name: string) => deps.warehouse.table(name);
  const { settings } = deps;
  // Its identifiers as they are now (the newest row of each: a split or an erasure may have moved or
  // removed some), and their events, read without FINAL, which merges every part to read a few rows
  // (measured 2x slower for identity, 5x for events); an event delivered twice is read once by its
  // id instead. One query: each costs a few milliseconds before it reads anything.
  const rows = await selectRows<Omit<Anchor, 'name' | 'category'>>(
    deps.warehouse.client,
    `SELECT sku, sum(w) AS weight, count() AS interactions, max(k) AS kind,
            argMax(ch, (k, at)) AS channel,
            maxIf(at, k = 3) > {ref:DateTime64(3, 'UTC')} - INTERVAL {excludeBoughtDays:UInt32} DAY AS bought_recently,
            maxIf(at, k < 3) > {ref:DateTime64(3, 'UTC')} - INTERVAL {revisitDays:UInt32} DAY AS seen_lately
     FROM (
       SELECT arrayJoin(product_ids) AS sku, channel AS ch, occurred_at AS at,
              ${interactionWeightSql()} * ${decaySql('occurred_at', '{halfLifeDays:Float64}')} AS w,
              multiIf(event_name = '${INTERACTIONS.bought}', 3, event_name = '${INTERACTIONS.carted}', 2, 1) AS k
       FROM (
         SELECT event_id, product_ids, channel, occurred_at, event_name FROM ${t('events')}
         WHERE identifier_hash IN (
             SELECT identifier_hash FROM ${t('identity')}
             WHERE identifier_hash IN (SELECT identifier_hash FROM ${t('identity')} WHERE profile_id = {id:String})
             GROUP BY identifier_hash
             HAVING argMax(profile_id, seq) = {id:String} AND NOT argMax(is_deleted, seq))
           AND event_name IN ('${Object.values(INTERACTIONS).join("', '")}')
           AND occurred_at > {ref:DateTime64(3, 'UTC')} - INTERVAL {windowDays:UInt32} DAY
         LIMIT 1 BY event_id
       )
     )
     WHERE sku != ''
     GROUP BY sku
     SETTINGS final = 0`,
    {
      id: profileId,
      ref: clickhouseTime(model.referenceAt),
      excludeBoughtDays: settings.excludeBoughtDays,
      revisitDays: settings.revisitDays,
      halfLifeDays: settings.halfLifeDays,
      windowDays: settings.windowDays,
      ...settings.weights,
    },
  );
  return rows.map((row) => ({
    ...row,
    weight: Number(row.weight),
    interactions: Number(row.interactions),
    ...describe(catalog, row.sku),
  }));
}

function describe(catalog: ModelCatalog, sku: string): { name: string; category: string } {
  return catalog.products.get(sku) ?? { name: sku, category: '' };
}

/**
 * The candidates for a list, with names and categories, among what the store
 * sells when there is one: for a profile's anchors, the neighbours of its
 * strongest (from the cache, or one query by the model's primary key), the anchors themselves
 * and the best sellers of each category they are in; then the popularity
 * lists of the store, its city and overall.
 */
async function candidatesFor(
  deps: ServeDeps,
  catalog: ModelCatalog,
  model: CommittedModel,
  store: string | undefined,
  personal?: { readonly anchors: readonly Anchor[]; readonly depth: number },
): Promise<Candidate[]> {
  const shop = store === undefined ? undefined : catalog.stores.get(store);
  if (store !== undefined && !shop)
    throw new TandemError(ErrorCodes.NOT_FOUND, `no store ${store} in the catalog`, {
      storeId: store,
    });
  const candidates: Candidate[] = [];
  const add = (source: Candidate['source'], sku: string, via: string, score: number) => {
    const item = describe(catalog, sku);
    if (shop && !shop.sells.has(item.category)) return;
    candidates.push({ source, sku, via, score, ...item });
  };
  const anchors = personal?.anchors ?? [];
  if (anchors.length > 0) {
    const strongest = anchors
      .slice()
      .sort((a, b) => b.weight - a.weight)
      .slice(0, deps.settings.itemsPerProfile)
      .map((anchor) => anchor.sku);
    // Each neighbour scored by its share of its anchor's neighbours' similarity, before the store's filter.
    for (const [sku, neighbours] of await deps.neighbours(model.model, strongest))
      for (const { neighbour, share } of neighbours) add('similar', neighbour, sku, share);
    for (const anchor of anchors) add('self', anchor.sku, '', 1);
    const listed = new Set<string>();
    for (const category of new Set(anchors.map((anchor) => anchor.category))) {
      const sellers = catalog.popular.get(`category:${category}`) ?? [];
      for (const entry of sellers.slice(0, personal?.depth)) {
        add('category', entry.sku, '', entry.score);
        listed.add(entry.sku);
      }
    }
    // A neighbour or an anchor further down its category's list still has its part of the category's sales.
    for (const { sku } of candidates.slice()) {
      const share = catalog.categoryShare.get(sku);
      if (listed.has(sku) || share === undefined) continue;
      add('category', sku, '', share);
      listed.add(sku);
    }
  }
  const lists: [Candidate['source'], string][] = [
    ['store', `store:${store}`],
    ['city', `city:${shop?.city}`],
    ['all', 'all'],
  ];
  for (const [source, key] of lists) {
    if (source !== 'all' && !shop) continue;
    for (const entry of catalog.popular.get(key) ?? []) add(source, entry.sku, '', entry.score);
  }
  return candidates;
}

function parseTrait(value: string): string | undefined {
  if (!value) return undefined;
  try {
    const parsed: unknown = JSON.parse(value);
    return typeof parsed === 'string' && parsed ? parsed : undefined;
  } catch {
    return undefined;
  }
}
