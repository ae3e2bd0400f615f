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
  RecommendationReason,
  RecommendationSettings,
  RecommendedItem,
  StoreRecommendations,
} from '../../schemas/recommendations.js';
import { RECO_MODELS } from '../../warehouse/recommendation-tables.js';
import { selectRows } from '../../warehouse/select.js';
import type { Warehouse } from '../../warehouse/warehouse.js';
import {
  type CommittedModel,
  decaySql,
  INTERACTIONS,
  interactionWeightSql,
  toCommitted,
} from './reco-model.js';

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

/** One item the profile interacted with: its decayed weight, strongest kind, and that kind's channel. */
interface Anchor {
  readonly sku: string;
  readonly weight: number;
  /** 1 viewed, 2 carted, 3 bought. */
  readonly kind: 1 | 2 | 3;
  readonly channel: 'online' | 'offline';
  readonly bought_recently: number;
}

interface Candidate {
  /** A neighbour of an anchor, an anchor itself, or a popularity list. */
  readonly source: 'similar' | 'self' | 'store' | 'city' | 'all';
  readonly sku: string;
  readonly via: string;
  readonly score: number;
  readonly name: string;
  readonly category: string;
  readonly via_name: string;
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
      ref: model.referenceAt.replace('T', ' ').replace('Z', ''),
      excludeBoughtDays: settings.excludeBoughtDays,
      halfLifeDays: settings.halfLifeDays,
      windowDays: settings.windowDays,
      ...settings.weights,
    },
  );
}

/** How many items of each popularity list are kept in memory: enough to fill a list among what a store sells. */
const POPULAR_KEPT = 500;

/** What a model answers without reading anyone's data: names and categories, stores, popularity lists. */
interface ModelCatalog {
  readonly products: ReadonlyMap<string, { readonly name: string; readonly category: string }>;
  readonly stores: ReadonlyMap<
    string,
    { readonly city: string; readonly sells: ReadonlySet<string> }
  >;
  /** Best first, by `store:ID`, `city:NAME` and `all`. */
  readonly popular: ReadonlyMap<
    string,
    readonly { readonly sku: string; readonly score: number }[]
  >;
}

/**
 * The catalogue and popularity lists of the newest model, read once per
 * model and kept in memory (a few thousand rows), so a request reads only
 * what is about its profile.
 */
function catalogCache(warehouse: Warehouse) {
  let cached: { model: number; catalog: Promise<ModelCatalog> } | undefined;
  return (model: number): Promise<ModelCatalog> => {
    if (cached?.model !== model) {
      const catalog = loadCatalog(warehouse, model);
      cached = { model, catalog };
      // A failed load is not kept: the next request tries again.
      catalog.catch(() => {
        if (cached?.catalog === catalog) cached = undefined;
      });
    }
    return cached.catalog;
  };
}

async function loadCatalog(warehouse: Warehouse, model: number): Promise<ModelCatalog> {
  const t = (name: string) => warehouse.table(name);
  const [products, stores, popular] = await Promise.all([
    selectRows<{ sku: string; name: string; category: string }>(
      warehouse.client,
      `SELECT sku, name, category FROM ${t('products')}`,
    ),
    selectRows<{ store_id: string; city: string; categories: string[] }>(
      warehouse.client,
      `SELECT store_id, city, categories FROM ${t('stores')}`,
    ),
    selectRows<{ scope: string; scope_id: string; sku: string; score: number }>(
      warehouse.client,
      `SELECT scope, scope_id, sku, score FROM ${t('reco_popularity')}
       WHERE model = {model:UInt64}
       ORDER BY scope, scope_id, score DESC, sku
       LIMIT {kept:UInt32} BY scope, scope_id`,
      { model, kept: POPULAR_KEPT },
    ),
  ]);
  const lists = new Map<string, { sku: string; score: number }[]>();
  for (const row of popular) {
    const key = row.scope === 'all' ? 'all' : `${row.scope}:${row.scope_id}`;
    const list = lists.get(key) ?? [];
    list.push({ sku: row.sku, score: Number(row.score) });
    lists.set(key, list);
  }
  return {
    products: new Map(products.map((p) => [p.sku, { name: p.name, category: p.category }])),
    stores: new Map(
      stores.map((s) => [s.store_id, { city: s.city, sells: new Set(s.categories) }]),
    ),
    popular: lists,
  };
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
    candidates.push({ source, sku, via, score, ...item, via_name: viaName });
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

/** Items scored by the anchors that lead to them, best first, with the anchor that counts most as the reason. */
function personalItems(
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
  const because = { sku: anchorSku, name: self ? via.name : via.via_name, channel: anchor.channel };
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
function fill(
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

function parseTrait(value: string): string | undefined {
  if (!value) return undefined;
  try {
    const parsed: unknown = JSON.parse(value);
    return typeof parsed === 'string' && parsed ? parsed : undefined;
  } catch {
    return undefined;
  }
}

const round = (n: number) => Math.round(n * 10_000) / 10_000;
