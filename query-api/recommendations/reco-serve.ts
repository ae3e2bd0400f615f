/**
 * Answering a recommendation request from the newest committed model.
 *
 * A profile that consents to personalization now gets items ranked from what
 * it viewed, carted and bought (online and in store, read from
 * `product_interactions` at request time, so a purchase a minute ago is
 * already excluded): the best sellers of the categories it shops, items
 * similar to its own, and what it looked at lately but has not bought
 * (`reco-rank.ts`); the rest is filled with what sells at the store, in its
 * city, then overall. A profile that does not consent gets the popularity
 * list alone, built without reading anything of theirs — the answer any
 * shopper at that store would get. Consent is read on every request, so a
 * withdrawal applies to the next one.
 */
import { ErrorCodes, TandemError } from '../../schemas/errors.js';
import type {
  ProfileRecommendations,
  RecommendationContext,
  RecommendationSettings,
  StoreRecommendations,
} from '../../schemas/recommendations.js';
import { heldIdentifiersSql } from '../../warehouse/held-identifiers.js';
import { selectRows } from '../../warehouse/select.js';
import { PRODUCT_INTERACTIONS } from '../../warehouse/tables.js';
import { clickhouseTime, type Warehouse } from '../../warehouse/warehouse.js';
import {
  catalogCache,
  type ModelCatalog,
  neighbourCache,
  newestModelCache,
} from './reco-catalog.js';
import { type CommittedModel, INTERACTIONS } from './reco-model.js';
import {
  type Anchor,
  anchorsFrom,
  type Candidate,
  fill,
  type Interaction,
  personalItems,
} from './reco-rank.js';

export interface ServeDeps {
  readonly warehouse: Warehouse;
  readonly settings: RecommendationSettings;
  /** The newest model's catalogue and popularity lists, read once per model. */
  readonly catalog: (model: number) => Promise<ModelCatalog>;
  /** The newest model's neighbour lists, by item, kept once read. */
  readonly neighbours: ReturnType<typeof neighbourCache>;
  /** The newest committed model, read again at most once a second. */
  readonly model: ReturnType<typeof newestModelCache>;
}

/** What answering needs, with its per-model cache; one per process. */
export function recommender(warehouse: Warehouse, settings: RecommendationSettings): ServeDeps {
  return {
    warehouse,
    settings,
    catalog: catalogCache(warehouse),
    neighbours: neighbourCache(warehouse),
    model: newestModelCache(warehouse),
  };
}

export interface ProfileRequest {
  readonly profileId: string;
  readonly limit: number;
  readonly store: string | undefined;
  readonly context: RecommendationContext;
}

/** What one query reads about the profile. */
interface Subject {
  readonly status: string;
  readonly merged_into: string;
  /** Consents to personalization now (false when it never said). */
  readonly personalize: boolean;
  readonly preferred_store: string;
  /** Its events that name a product in the model's window and since: none without consent. */
  readonly interactions: readonly (Omit<Interaction, 'at'> & { readonly at: string })[];
}

/** Recommendations for a profile: personalised when it consents, popularity otherwise. */
export async function recommendForProfile(
  deps: ServeDeps,
  request: ProfileRequest,
): Promise<ProfileRecommendations> {
  const model = await deps.model();
  const catalog = await deps.catalog(model.model);
  const { profileId, subject } = await resolveSubject(deps, request, model);
  const store =
    request.store ??
    (request.context === 'in_store' && subject.personalize
      ? parseTrait(subject.preferred_store)
      : undefined);
  const anchors = anchorsFrom(
    subject.interactions.map((row) => ({ ...row, at: Number(row.at) })),
    Date.parse(model.referenceAt),
    deps.settings,
    (sku) => describe(catalog, sku),
  );
  const exclude = new Set(anchors.filter((a) => a.boughtRecently).map((a) => a.sku));
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
  const model = await deps.model();
  const candidates = await candidatesFor(deps, await deps.catalog(model.model), model, storeId);
  return { storeId, items: fill([], candidates, new Set(), limit, deps.settings), model };
}

async function resolveSubject(
  deps: ServeDeps,
  request: ProfileRequest,
  model: CommittedModel,
): Promise<{ profileId: string; subject: Subject }> {
  let profileId = request.profileId;
  // A merged profile answers for its survivor; merges chain rarely, never in a loop.
  for (let hop = 0; hop < 8; hop++) {
    const subject = await readSubject(deps, profileId, model, {
      preferredStore: request.context === 'in_store' && request.store === undefined,
    });
    if (!subject) break;
    if (subject.status !== 'merged' || !subject.merged_into) return { profileId, subject };
    profileId = subject.merged_into;
  }
  throw new TandemError(ErrorCodes.NOT_FOUND, `no profile ${request.profileId}`, {
    profileId: request.profileId,
  });
}

/**
 * The profile's state, its personalization consent now, its preferred store
 * when asked, and — only when it consents — what it viewed, carted and
 * bought in the model's window (and since): one query, as each costs a few
 * milliseconds before it reads anything.
 *
 * Everything is read without FINAL, which merges every part to read a few
 * rows (measured 2x slower): the newest row of each key by its version
 * instead, and an event delivered twice once by its id. The profile's
 * identifiers are taken as they are now (a split or an erasure may have
 * moved or removed some), and their events from `product_interactions`,
 * ordered by identifier (from `events`, ordered by time, the same read took
 * 28 ms instead of 16 on 2M events). They come back as they are, a few dozen
 * rows, and `anchorsFrom` adds them up: aggregating them in the query cost
 * 7 ms more, in the stages a query runs through. The consent is a constant
 * by the time the events are read, so for a profile without it they are not
 * read at all.
 */
async function readSubject(
  deps: ServeDeps,
  profileId: string,
  model: CommittedModel,
  wanted: { readonly preferredStore: boolean },
): Promise<Subject | undefined> {
  const t = (name: string) => deps.warehouse.table(name);
  const { settings } = deps;
  const preferredStore = wanted.preferredStore
    ? `(SELECT argMax(value, seq) FROM ${t('profile_traits')}
        WHERE profile_id = {id:String} AND trait = 'preferred_store')`
    : "''";
  const [row] = await selectRows<Subject>(
    deps.warehouse.client,
    `WITH (SELECT argMax(granted, seq) FROM ${t('consents')}
           WHERE profile_id = {id:String} AND purpose = 'personalization') AS consenting
     SELECT status, merged_into, consenting AS personalize, ${preferredStore} AS preferred_store,
       (SELECT groupArray(CAST((toString(event_id), product_ids, channel, toUnixTimestamp64Milli(occurred_at), event_name),
                               'Tuple(eventId String, productIds Array(String), channel String, at Int64, eventName String)'))
        FROM ${t(PRODUCT_INTERACTIONS.name)}
        WHERE consenting
          AND identifier_hash IN (SELECT identifier_hash FROM (${heldIdentifiersSql(t('identity'))}))
          AND event_name IN ('${Object.values(INTERACTIONS).join("', '")}')
          AND occurred_at > {ref:DateTime64(3, 'UTC')} - INTERVAL {windowDays:UInt32} DAY) AS interactions
     FROM ${t('profiles')}
     WHERE profile_id = {id:String}
     ORDER BY seq DESC
     LIMIT 1
     SETTINGS final = 0`,
    { id: profileId, ref: clickhouseTime(model.referenceAt), windowDays: settings.windowDays },
  );
  return row;
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
