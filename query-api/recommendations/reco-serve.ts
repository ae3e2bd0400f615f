/**
 * Answering a recommendation request from the newest committed model.
 *
 * A profile that consents to personalization now gets items similar to what
 * it viewed, carted and bought (online and in store, read from `events` at
 * request time, so a purchase a minute ago is already excluded), and what it
 * looked at but has not bought; the rest of the list is filled with what
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
import { catalogCache, type ModelCatalog } from './reco-catalog.js';
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
}

/** What answering needs, with its per-model cache; one per process. */
export function recommender(warehouse: Warehouse, settings: RecommendationSettings): ServeDeps {
  return { warehouse, settings, catalog: catalogCache(warehouse) };
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
  const anchors = subject.personalize > 0 ? await anchorsOf(deps, profileId, model) : [];
  const strongest = anchors
    .slice()
    .sort((a, b) => b.weight - a.weight)
    .slice(0, deps.settings.itemsPerProfile);
  const candidates = await candidatesFor(
    deps,
    await deps.catalog(model.model),
    model,
    store,
    strongest.map((a) => a.sku),
  );
  const exclude = new Set(anchors.filter((a) => a.bought_recently > 0).map((a) => a.sku));
  const personal = personalItems(strongest, candidates, exclude);
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
  const candidates = await candidatesFor(deps, await deps.catalog(model.model), model, storeId, []);
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
  profileId: string,
  model: CommittedModel,
): Promise<Anchor[]> {
  const t = (name: string) => deps.warehouse.table(name);
  const { settings } = deps;
  // The profile's identifiers as they are now (FINAL: a split or an erasure may have moved or removed some).
  const [identity] = await selectRows<{ hashes: string[] }>(
    deps.warehouse.client,
    `SELECT groupArray(identifier_hash) AS hashes FROM ${t('identity')} WHERE profile_id = {id:String}`,
    { id: profileId },
  );
  const hashes = identity?.hashes ?? [];
  if (hashes.length === 0) return [];
  // Their events without FINAL, which would merge the whole table to read a few rows (measured 5x
  // slower); a row delivered twice is read once by its event id instead.
  return selectRows<Anchor>(
    deps.warehouse.client,
    `SELECT sku, sum(w) AS weight, max(k) AS kind,
            argMax(ch, (k, at)) AS channel,
            maxIf(at, k = 3) > {ref:DateTime64(3, 'UTC')} - INTERVAL {excludeBoughtDays:UInt32} DAY AS bought_recently
     FROM (
       SELECT arrayJoin(product_ids) AS sku, channel AS ch, occurred_at AS at,
              ${interactionWeightSql()} * ${decaySql('occurred_at', '{halfLifeDays:Float64}')} AS w,
              multiIf(event_name = '${INTERACTIONS.bought}', 3, event_name = '${INTERACTIONS.carted}', 2, 1) AS k
       FROM (
         SELECT event_id, product_ids, channel, occurred_at, event_name FROM ${t('events')}
         WHERE identifier_hash IN {hashes:Array(String)}
           AND event_name IN ('${Object.values(INTERACTIONS).join("', '")}')
           AND occurred_at > {ref:DateTime64(3, 'UTC')} - INTERVAL {windowDays:UInt32} DAY
         LIMIT 1 BY event_id
       )
     )
     WHERE sku != ''
     GROUP BY sku
     SETTINGS final = 0`,
    {
      hashes,
      ref: clickhouseTime(model.referenceAt),
      excludeBoughtDays: settings.excludeBoughtDays,
      halfLifeDays: settings.halfLifeDays,
      windowDays: settings.windowDays,
      ...settings.weights,
    },
  );
}

/**
 * Neighbours of the anchors (one query by the model's primary key) and the
 * popularity lists of the store, its city and overall, with names and
 * categories, among what the store sells when there is one.
 */
async function candidatesFor(
  deps: ServeDeps,
  catalog: ModelCatalog,
  model: CommittedModel,
  store: string | undefined,
  anchors: readonly string[],
): Promise<Candidate[]> {
  const shop = store === undefined ? undefined : catalog.stores.get(store);
  if (store !== undefined && !shop)
    throw new TandemError(ErrorCodes.NOT_FOUND, `no store ${store} in the catalog`, {
      storeId: store,
    });
  const neighbours =
    anchors.length === 0
      ? []
      : await selectRows<{ sku: string; neighbour: string; score: number }>(
          deps.warehouse.client,
          `SELECT sku, neighbour, score FROM ${deps.warehouse.table('reco_item_neighbours')}
           WHERE model = {model:UInt64} AND sku IN {anchors:Array(String)}`,
          { model: model.model, anchors },
        );
  const describe = (sku: string) => catalog.products.get(sku) ?? { name: sku, category: '' };
  const candidates: Candidate[] = [];
  const add = (source: Candidate['source'], sku: string, via: string, score: number) => {
    const item = describe(sku);
    if (shop && !shop.sells.has(item.category)) return;
    const viaName = via ? describe(via).name : '';
    candidates.push({ source, sku, via, score, ...item, viaName });
  };
  for (const row of neighbours) add('similar', row.neighbour, row.sku, Number(row.score));
  for (const sku of anchors) add('self', sku, '', 1);
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
