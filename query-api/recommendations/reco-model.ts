/**
 * The recommendation model, trained inside ClickHouse from the projected
 * tables: item-to-item similarity across channels (a view online and a
 * purchase in a store count alike, by weight), time-decayed and
 * cosine-normalised so that popular items do not drown the rest; and
 * popularity per store, per city and overall for the non-personalised answer.
 *
 * Only profiles that consent to personalization now train the similarity
 * model, so a withdrawal leaves it at the next refresh; a shared device's
 * profile never does (it mixes people). Popularity counts units sold, an
 * aggregate of the business's own sales.
 *
 * A refresh writes a new model id into every model table and commits it by
 * adding its row to `reco_models` last; readers take the newest committed
 * model. Models older than the one before it are then dropped, a partition
 * at a time, with any a crashed refresh left behind.
 */
import type { Logger } from 'pino';
import { ErrorCodes, TandemError } from '../../schemas/errors.js';
import {
  DEFAULT_RECOMMENDATION_SETTINGS,
  type RecommendationSettings,
} from '../../schemas/recommendations.js';
import {
  RECO_ITEM_NEIGHBOURS,
  RECO_MODEL_PROFILES,
  RECO_MODELS,
  RECO_POPULARITY,
} from '../../warehouse/recommendation-tables.js';
import { selectRows } from '../../warehouse/select.js';
import { clickhouseTime, isoTime, type Warehouse } from '../../warehouse/warehouse.js';

/** The event names that are interactions with an item, and how each is weighed. */
export const INTERACTIONS = {
  viewed: 'Product Viewed',
  carted: 'Product Added',
  bought: 'Order Completed',
} as const;

export interface CommittedModel {
  readonly model: number;
  readonly trainedAt: string;
  readonly referenceAt: string;
}

export interface ModelRefresh extends CommittedModel {
  readonly profiles: number;
  readonly items: number;
  readonly pairs: number;
  readonly tookMs: number;
}

/** `exp(-ln 2 · age / half-life)`, age in seconds before `{ref}` (never negative); `anchorsFrom` in TypeScript. */
export function decaySql(column: string, halfLifeDays: string): string {
  return `exp(-0.6931471805599453 * greatest(0, dateDiff('second', ${column}, {ref:DateTime64(3, 'UTC')})) / (86400 * ${halfLifeDays}))`;
}

/** The weight of one interaction row of `events` (0 for other events). */
export function interactionWeightSql(): string {
  return `multiIf(event_name = '${INTERACTIONS.viewed}', {viewed:Float64},
                  event_name = '${INTERACTIONS.carted}', {carted:Float64},
                  event_name = '${INTERACTIONS.bought}', {bought:Float64}, 0)`;
}

/** Each consenting profile's strongest items, decayed, as `(profile_id, sku, weight)`. */
function interactionsSql(warehouse: Warehouse): string {
  const t = (name: string) => warehouse.table(name);
  return `SELECT profile_id, sku, sum(w) AS weight
FROM (
  SELECT i.profile_id AS profile_id, e.sku AS sku, e.w AS w
  FROM (
    SELECT identifier_hash, arrayJoin(product_ids) AS sku,
           ${interactionWeightSql()} * ${decaySql('occurred_at', '{halfLifeDays:Float64}')} AS w
    FROM ${t('events')}
    WHERE occurred_at > {ref:DateTime64(3, 'UTC')} - INTERVAL {windowDays:UInt32} DAY
      AND occurred_at <= {ref:DateTime64(3, 'UTC')}
      AND event_name IN ('${Object.values(INTERACTIONS).join("', '")}')
  ) AS e
  INNER JOIN ${t('identity')} AS i ON i.identifier_hash = e.identifier_hash
  WHERE e.sku != '' AND e.w > 0
    AND i.profile_id IN (SELECT profile_id FROM ${t('consents')} WHERE purpose = 'personalization' AND granted)
    AND i.profile_id NOT IN (SELECT profile_id FROM ${t('profiles')} WHERE created_reason = 'shared')
)
GROUP BY profile_id, sku
ORDER BY profile_id, weight DESC
LIMIT {itemsPerProfile:UInt32} BY profile_id`;
}

/** Trains a new model from what the warehouse holds now, and commits it. */
export async function refreshModel(
  warehouse: Warehouse,
  settings: RecommendationSettings = DEFAULT_RECOMMENDATION_SETTINGS,
): Promise<ModelRefresh> {
  const started = performance.now();
  const t = (name: string) => warehouse.table(name);
  const model = Date.now();
  const trainedAt = clickhouseTime(model);
  const [bounds] = await selectRows<{ ref: string }>(
    warehouse.client,
    `SELECT toString(least(now64(3, 'UTC'), if(count() = 0, now64(3, 'UTC'), max(occurred_at)))) AS ref FROM ${t('events')}`,
  );
  const ref = bounds?.ref ?? trainedAt;
  const params = {
    model,
    ref,
    windowDays: settings.windowDays,
    halfLifeDays: settings.halfLifeDays,
    popularityDays: settings.popularityDays,
    itemsPerProfile: settings.itemsPerProfile,
    neighbours: settings.neighbours,
    minSupport: settings.minSupport,
    ...settings.weights,
  };
  const run = (query: string) => warehouse.client.command({ query, query_params: params });

  await run(`INSERT INTO ${t(RECO_MODEL_PROFILES.name)} (model, profile_id, interactions)
SELECT {model:UInt64}, profile_id, count() FROM (${interactionsSql(warehouse)}) GROUP BY profile_id`);

  await run(`INSERT INTO ${t(RECO_ITEM_NEIGHBOURS.name)} (model, sku, neighbour, score, support)
WITH interactions AS (${interactionsSql(warehouse)}),
norms AS (SELECT sku, sqrt(sum(weight * weight)) AS norm FROM interactions GROUP BY sku),
pairs AS (
  SELECT a.sku AS sku, b.sku AS neighbour, sum(a.weight * b.weight) AS dot, count() AS support
  FROM interactions AS a INNER JOIN interactions AS b ON a.profile_id = b.profile_id
  WHERE a.sku != b.sku
  GROUP BY sku, neighbour
  HAVING support >= {minSupport:UInt32}
)
SELECT {model:UInt64}, p.sku, p.neighbour, p.dot / (na.norm * nb.norm) AS score, p.support
FROM pairs AS p
INNER JOIN norms AS na ON na.sku = p.sku
INNER JOIN norms AS nb ON nb.sku = p.neighbour
ORDER BY p.sku, score DESC
LIMIT {neighbours:UInt32} BY p.sku`);

  // Recent sales, halving every half of the popularity window: this week's, mostly the last days.
  const units = (l: string) =>
    `sum(${l}quantity * ${decaySql(`${l}occurred_at`, '({popularityDays:UInt32} / 2)')})`;
  /** Sales of the last `days` (a parameter's name) up to the reference time. */
  const within = (l: string, days: string) =>
    `${l}occurred_at > {ref:DateTime64(3, 'UTC')} - INTERVAL {${days}:UInt32} DAY AND ${l}occurred_at <= {ref:DateTime64(3, 'UTC')}`;
  const recent = (l: string) => within(l, 'popularityDays');
  // Overall and within each category: the training window's sales, decayed like interactions.
  const overall = (l: string) =>
    `sum(${l}quantity * ${decaySql(`${l}occurred_at`, '{halfLifeDays:Float64}')})`;
  const inWindow = (l: string) => within(l, 'windowDays');
  await run(`INSERT INTO ${t(RECO_POPULARITY.name)} (model, scope, scope_id, sku, score, buyers)
SELECT {model:UInt64}, 'store', store_id, sku, ${units('')}, uniqExact(identifier_hash)
FROM ${t('order_lines')} WHERE store_id != '' AND ${recent('')}
GROUP BY store_id, sku
UNION ALL
SELECT {model:UInt64}, 'city', s.city, l.sku, ${units('l.')}, uniqExact(l.identifier_hash)
FROM ${t('order_lines')} AS l INNER JOIN ${t('stores')} AS s ON s.store_id = l.store_id
WHERE ${recent('l.')}
GROUP BY s.city, l.sku
UNION ALL
SELECT {model:UInt64}, 'all', '', sku, ${overall('')}, uniqExact(identifier_hash)
FROM ${t('order_lines')} WHERE ${inWindow('')}
GROUP BY sku
UNION ALL
SELECT {model:UInt64}, 'category', category, sku, units / sum(units) OVER (PARTITION BY category), buyers
FROM (
  SELECT p.category AS category, l.sku AS sku, ${overall('l.')} AS units, uniqExact(l.identifier_hash) AS buyers
  FROM ${t('order_lines')} AS l INNER JOIN ${t('products')} AS p ON p.sku = l.sku
  WHERE ${inWindow('l.')}
  GROUP BY p.category, l.sku
)`);

  const [counts] = await selectRows<{ profiles: number; items: number; pairs: number }>(
    warehouse.client,
    `SELECT
       (SELECT count() FROM ${t(RECO_MODEL_PROFILES.name)} WHERE model = {model:UInt64}) AS profiles,
       (SELECT uniqExact(sku) FROM ${t(RECO_ITEM_NEIGHBOURS.name)} WHERE model = {model:UInt64}) AS items,
       (SELECT count() FROM ${t(RECO_ITEM_NEIGHBOURS.name)} WHERE model = {model:UInt64}) AS pairs`,
    { model },
  );
  const committed = {
    profiles: Number(counts?.profiles ?? 0),
    items: Number(counts?.items ?? 0),
    pairs: Number(counts?.pairs ?? 0),
  };
  await warehouse.client.insert({
    table: t(RECO_MODELS.name),
    values: [
      {
        model,
        trained_at: trainedAt,
        reference_at: ref,
        ...committed,
        settings: JSON.stringify(settings),
      },
    ],
    format: 'JSONEachRow',
  });
  await dropOldModels(warehouse, model);
  return {
    model,
    trainedAt: new Date(model).toISOString(),
    referenceAt: isoTime(ref),
    ...committed,
    tookMs: Math.round(performance.now() - started),
  };
}

/** Drops every model's partitions but `current` and the committed one before it (a reader may still be on it). */
async function dropOldModels(warehouse: Warehouse, current: number): Promise<void> {
  const committed = await selectRows<{ model: number }>(
    warehouse.client,
    `SELECT model FROM ${warehouse.table(RECO_MODELS.name)} WHERE model < {current:UInt64} ORDER BY model DESC LIMIT 1`,
    { current },
  );
  const keep = new Set([current, ...committed.map((row) => Number(row.model))]);
  for (const spec of [RECO_ITEM_NEIGHBOURS, RECO_POPULARITY, RECO_MODEL_PROFILES]) {
    const partitions = await selectRows<{ partition: string }>(
      warehouse.client,
      `SELECT DISTINCT partition FROM system.parts
       WHERE database = {database:String} AND table = {table:String} AND active`,
      { database: warehouse.database, table: spec.name },
    );
    for (const { partition } of partitions) {
      if (keep.has(Number(partition)) || Number(partition) > current) continue;
      await warehouse.client.command({
        query: `ALTER TABLE ${warehouse.table(spec.name)} DROP PARTITION {partition:UInt64}`,
        query_params: { partition: Number(partition) },
      });
    }
  }
}

/** The newest committed model; NOT_READY when none was trained yet. */
export async function readNewestModel(warehouse: Warehouse): Promise<CommittedModel> {
  const [row] = await selectRows<{ model: number; trained_at: string; reference_at: string }>(
    warehouse.client,
    `SELECT model, toString(trained_at) AS trained_at, toString(reference_at) AS reference_at
     FROM ${warehouse.table(RECO_MODELS.name)} ORDER BY model DESC LIMIT 1`,
  );
  if (!row)
    throw new TandemError(
      ErrorCodes.NOT_READY,
      'no recommendation model has been trained yet: it trains when the projector starts and on its schedule, or on POST /v1/recommendations/refresh',
    );
  return {
    model: Number(row.model),
    trainedAt: isoTime(row.trained_at),
    referenceAt: isoTime(row.reference_at),
  };
}

/**
 * Trains the model when it is due: at once when there is none or the newest
 * learned from nobody (a fresh start, before the projector caught up), then
 * every `everyMinutes`; checked every `checkMs`. Run it in one process per
 * deployment (the projector's), like segment refreshes. Returns a stop
 * function that waits for a running refresh.
 */
export function scheduleModelRefreshes(deps: {
  readonly warehouse: Warehouse;
  readonly settings: RecommendationSettings;
  readonly everyMinutes: number;
  readonly log: Logger;
  readonly checkMs?: number;
}): () => Promise<void> {
  let running: Promise<void> = Promise.resolve();
  const tick = async () => {
    const [newest] = await selectRows<{ model: number; profiles: number }>(
      deps.warehouse.client,
      `SELECT model, profiles FROM ${deps.warehouse.table(RECO_MODELS.name)} ORDER BY model DESC LIMIT 1`,
    );
    const due =
      !newest ||
      Number(newest.profiles) === 0 ||
      Date.now() - Number(newest.model) >= deps.everyMinutes * 60_000;
    if (!due) return;
    const done = await refreshModel(deps.warehouse, deps.settings);
    deps.log.info(done, 'recommendation model refreshed');
  };
  const check = () => {
    running = running.then(tick).catch((error: unknown) => {
      deps.log.error(
        { err: error },
        'recommendation model refresh failed; retrying at the next check',
      );
    });
  };
  check();
  const timer = setInterval(check, deps.checkMs ?? 60_000).unref();
  return async () => {
    clearInterval(timer);
    await running;
  };
}
