/**
 * The recommendation model's tables, written by model refreshes (not by the
 * projector). Each refresh writes a new model — its own partition in every
 * table — and commits it by adding its row to `reco_models` last, so a
 * reader that takes the newest committed model never sees half of one.
 * Older models are dropped a partition at a time once a newer one is
 * committed. Nothing here names a person but by profile id.
 */
import { label, type TableSpec, text, time } from './tables.js';

const model = {
  name: 'model',
  type: 'UInt64',
  comment: 'The model (refresh) the row belongs to; see `reco_models`.',
} as const;

export const RECO_MODELS: TableSpec = {
  name: 'reco_models',
  comment:
    'Every committed recommendation model: when it was trained, on what, with which settings.',
  columns: [
    model,
    time('trained_at', 'When the refresh ran.'),
    time(
      'reference_at',
      'The end of its windows: the newest event then (or the refresh time, if earlier).',
    ),
    {
      name: 'profiles',
      type: 'UInt32',
      comment: 'Profiles consenting to personalization whose data trained it.',
    },
    { name: 'items', type: 'UInt32', comment: 'Items with at least one neighbour.' },
    { name: 'pairs', type: 'UInt64', comment: 'Item pairs kept (`reco_item_neighbours` rows).' },
    { name: 'settings', type: 'String', comment: 'The model settings it ran with, as JSON.' },
  ],
  version: 'model',
  orderBy: 'model',
};

export const RECO_ITEM_NEIGHBOURS: TableSpec = {
  name: 'reco_item_neighbours',
  comment:
    'Item-to-item similarity across channels (views, carts and purchases, online and in store), time-decayed, cosine-normalised; the top neighbours of each item.',
  columns: [
    model,
    text('sku', 'The item.'),
    text('neighbour', 'An item often met by the same consenting shoppers.'),
    {
      name: 'score',
      type: 'Float32',
      comment: 'Cosine similarity of the two items over decayed interaction weights (0–1).',
    },
    {
      name: 'support',
      type: 'UInt32',
      comment: 'Consenting profiles that interacted with both.',
    },
  ],
  version: 'model',
  orderBy: '(model, sku, neighbour)',
  partitionBy: 'model',
};

export const RECO_POPULARITY: TableSpec = {
  name: 'reco_popularity',
  comment:
    "What sells: items by time-decayed units bought, per store and per city in the recent window, and across everything in the training window (the non-personalised answer); and each item's share of its category's sales in the training window (what a profile that shops the category is offered).",
  columns: [
    model,
    label('scope', '`store`, `city`, `all` or `category`.'),
    text('scope_id', 'Store id, city or category; empty for `all`.'),
    text('sku', 'The item.'),
    {
      name: 'score',
      type: 'Float32',
      comment: "Time-decayed units bought; for `category`, the share of the category's (0–1).",
    },
    { name: 'buyers', type: 'UInt32', comment: 'Distinct identifiers that bought it.' },
  ],
  version: 'model',
  orderBy: '(model, scope, scope_id, sku)',
  partitionBy: 'model',
};

export const RECO_MODEL_PROFILES: TableSpec = {
  name: 'reco_model_profiles',
  comment:
    'Which profiles’ data trained each model (they consented to personalization then); what an access request reports.',
  columns: [
    model,
    text('profile_id', 'A profile whose interactions trained the model.'),
    {
      name: 'interactions',
      type: 'UInt32',
      comment: 'Its items that entered the model.',
    },
  ],
  version: 'model',
  orderBy: '(model, profile_id)',
  partitionBy: 'model',
};

/** The tables model refreshes write. */
export const RECOMMENDATION_TABLES: readonly TableSpec[] = [
  RECO_MODELS,
  RECO_ITEM_NEIGHBOURS,
  RECO_POPULARITY,
  RECO_MODEL_PROFILES,
];
