/**
 * Recommendation quality against the fixtures' held-out purchases, and the
 * endpoint's latency. The generator keeps each repeat buyer's last purchase
 * out of the events (it is only in `truth.ndjson`), so the model trains on
 * the rest by construction. For shoppers who consent to personalization,
 * the endpoint's top 10 — with the store of the held-out purchase when it
 * was bought in one — is scored against the held-out items, side by side
 * with the popularity list for the same store (what any shopper there gets).
 */
import { createReadStream } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { startPlatform } from '../cli/platform.js';
import { openIngest } from '../cli/stores.js';
import { DATASET_FILES } from '../fixtures/generate.js';
import { type PersonTruth, TruthRecord } from '../fixtures/truth.js';
import type { IdentifierHasher } from '../privacy/identifiers.js';
import { identifierFromText } from '../privacy/identifiers.js';
import { refreshModel } from '../query-api/recommendations/reco-model.js';
import { recommender, recommendForStore } from '../query-api/recommendations/reco-serve.js';
import {
  DEFAULT_RECOMMENDATION_SETTINGS,
  type ProfileRecommendations,
} from '../schemas/recommendations.js';
import { selectRows } from '../warehouse/select.js';
import type { Warehouse } from '../warehouse/warehouse.js';
import { timed, withProjectedFixtures } from './fixture-log.js';
import { type BenchOptions, formatRate, median, percentile } from './report.js';

const SHOPPERS = 100_000;
const SEED = 11;
const K = 10;
/** Shoppers evaluated (those with a held-out purchase and personalization consent), at most. */
const EVALUATED = 3_000;
const RECALL_TARGET_RATIO = 1.5;
const P95_TARGET_MS = 50;
/** Identifier types by how surely they name one person: the one a shopper is looked up by. */
const LOOKUP_ORDER = ['user_id', 'member_id', 'email', 'phone', 'payment_token', 'anonymous_id'];

export async function runRecommendationsBench({ scale = 1 }: BenchOptions = {}): Promise<string> {
  const shoppers = Math.max(500, Math.round(SHOPPERS * scale));
  return withProjectedFixtures(
    'recommendations',
    { shoppers, seed: SEED },
    async (runtime, warehouse, fixtures, setup) => {
      const training = await timed(() => refreshModel(warehouse));
      const ingest = await openIngest(runtime);
      const hasher = ingest.hasher;
      await ingest.close();
      const people = await heldOutShoppers(fixtures, warehouse, hasher, runtime.config);
      return [
        await evaluate(runtime, warehouse, people),
        `model: ${formatRate(training.value.profiles)} consenting profiles, ${formatRate(training.value.items)} items, ${formatRate(training.value.pairs)} pairs, trained in ${training.seconds.toFixed(1)} s`,
        setup,
      ].join('\n');
    },
    // Thousands of requests from one key: lift the per-key rate limit for the run.
    { TANDEM_API_RATE_LIMIT: '100000000' },
  );
}

interface Shopper {
  readonly profileId: string;
  readonly heldOut: NonNullable<PersonTruth['heldOut']>;
}

/** Shoppers with a held-out purchase whose profile consents to personalization, found by their surest identifier. */
async function heldOutShoppers(
  fixtures: string,
  warehouse: Warehouse,
  hasher: IdentifierHasher,
  config: { readonly defaultPhoneCountryCode?: string | undefined },
): Promise<Shopper[]> {
  const wanted = new Map<string, NonNullable<PersonTruth['heldOut']>>();
  const input = createReadStream(join(fixtures, DATASET_FILES.truth));
  for await (const line of createInterface({ input, crlfDelay: Infinity })) {
    if (!line) continue;
    const record = TruthRecord.parse(JSON.parse(line));
    if (record.kind !== 'person' || !record.heldOut) continue;
    const identifier = [...record.identifiers]
      .filter((i) => i.note === undefined)
      .sort((a, b) => LOOKUP_ORDER.indexOf(a.type) - LOOKUP_ORDER.indexOf(b.type))[0];
    if (!identifier) continue;
    const { hash } = identifierFromText(`${identifier.type}:${identifier.value}`, hasher, {
      defaultCountryCode: config.defaultPhoneCountryCode,
    });
    wanted.set(hash, record.heldOut);
  }
  const hashes = [...wanted.keys()];
  const consenting = new Map<string, string>();
  for (let from = 0; from < hashes.length; from += 10_000) {
    const rows = await selectRows<{ identifier_hash: string; profile_id: string }>(
      warehouse.client,
      `SELECT identifier_hash, profile_id FROM ${warehouse.table('identity')}
       WHERE identifier_hash IN {hashes:Array(String)}
         AND profile_id IN (SELECT profile_id FROM ${warehouse.table('consents')}
                            WHERE purpose = 'personalization' AND granted)`,
      { hashes: hashes.slice(from, from + 10_000) },
    );
    for (const row of rows) consenting.set(row.identifier_hash, row.profile_id);
  }
  // A fixed sample, spread over the file: in the order of the truth (not of the rows, which
  // follows the table's parts and changes from run to run), every n-th.
  const shoppers = hashes.flatMap((hash) => {
    const profileId = consenting.get(hash);
    return profileId ? [{ profileId, heldOut: wanted.get(hash) as Shopper['heldOut'] }] : [];
  });
  const step = Math.max(1, Math.floor(shoppers.length / EVALUATED));
  return shoppers.filter((_, i) => i % step === 0).slice(0, EVALUATED);
}

interface Score {
  readonly recall: number;
  readonly ndcg: number;
}

const mean = (scores: readonly Score[], measure: keyof Score) =>
  scores.reduce((sum, each) => sum + each[measure], 0) / Math.max(1, scores.length);

/**
 * The model's mean over the baseline's, and a 95% bootstrap interval of it:
 * the ratio over resamples of the same shoppers (paired, with replacement).
 */
function ratioWithInterval(
  model: readonly Score[],
  baseline: readonly Score[],
  measure: keyof Score,
): { ratio: number; low: number; high: number } {
  const ratioOf = (indexes: readonly number[]) => {
    let ours = 0;
    let theirs = 0;
    for (const i of indexes) {
      ours += model[i]?.[measure] ?? 0;
      theirs += baseline[i]?.[measure] ?? 0;
    }
    return ours / Math.max(1e-9, theirs);
  };
  const n = model.length;
  const resampled = Array.from({ length: 2_000 }, () =>
    ratioOf(Array.from({ length: n }, () => Math.floor(Math.random() * n))),
  );
  return {
    ratio: ratioOf(Array.from({ length: n }, (_, i) => i)),
    low: percentile(resampled, 0.025),
    high: percentile(resampled, 0.975),
  };
}

/** Recall@K and NDCG@K of a ranked list against the held-out items (binary relevance). */
function score(ranked: readonly string[], relevant: ReadonlySet<string>) {
  let hits = 0;
  let dcg = 0;
  ranked.slice(0, K).forEach((sku, i) => {
    if (!relevant.has(sku)) return;
    hits++;
    dcg += 1 / Math.log2(i + 2);
  });
  let ideal = 0;
  for (let i = 0; i < Math.min(K, relevant.size); i++) ideal += 1 / Math.log2(i + 2);
  return { recall: hits / relevant.size, ndcg: ideal === 0 ? 0 : dcg / ideal };
}

async function evaluate(
  runtime: Parameters<typeof startPlatform>[0],
  warehouse: Warehouse,
  shoppers: readonly Shopper[],
): Promise<string> {
  const platform = await startPlatform(runtime, { host: '127.0.0.1', port: 0, parts: ['api'] });
  const authorization = `Bearer ${platform.adminKey.value}`;
  const deps = recommender(warehouse, DEFAULT_RECOMMENDATION_SETTINGS);
  const scores = { model: [] as Score[], baseline: [] as Score[] };
  const latencies: number[] = [];
  let personalized = 0;
  try {
    for (const shopper of shoppers) {
      const store = shopper.heldOut.channel === 'offline' ? shopper.heldOut.storeId : undefined;
      const query = store ? `?limit=${K}&store=${store}&context=in_store` : `?limit=${K}`;
      const started = performance.now();
      const response = await fetch(
        `${platform.address}/v1/profiles/${shopper.profileId}/recommendations${query}`,
        { headers: { authorization } },
      );
      const answer = (await response.json()) as ProfileRecommendations;
      latencies.push(performance.now() - started);
      if (!response.ok) throw new Error(`recommendations answered ${response.status}`);
      if (answer.personalized) personalized++;
      const relevant = new Set(shopper.heldOut.skus);
      const ours = score(
        answer.items.map((item) => item.sku),
        relevant,
      );
      const popular = await recommendForStore(deps, store, K);
      const baseline = score(
        popular.items.map((item) => item.sku),
        relevant,
      );
      scores.model.push(ours);
      scores.baseline.push(baseline);
    }
  } finally {
    await platform.close();
  }
  const recall = ratioWithInterval(scores.model, scores.baseline, 'recall');
  const ndcg = ratioWithInterval(scores.model, scores.baseline, 'ndcg');
  const row = (label: string, measure: keyof Score, ratio: typeof recall) =>
    `| ${label.padEnd(10)} | ${mean(scores.model, measure).toFixed(4)} | ${mean(scores.baseline, measure).toFixed(4)}              | ${ratio.ratio.toFixed(2)}  | ${ratio.low.toFixed(2)}–${ratio.high.toFixed(2)}    |`;
  const p50 = median(latencies);
  const p95 = percentile(latencies, 0.95);
  const offline = shoppers.filter((s) => s.heldOut.channel === 'offline').length;
  return [
    `recommendations: the top ${K} for ${formatRate(shoppers.length)} consenting shoppers (${formatRate(offline)} held-out purchases in a store, asked with that store) vs the popularity list for the same store (load average ${loadavg()
      .map((v) => v.toFixed(2))
      .join(' ')})`,
    '',
    `| measure    | model  | popularity baseline | ratio | 95% interval |`,
    `| ---------- | ------ | ------------------- | ----- | ------------ |`,
    row(`recall@${K}`, 'recall', recall),
    row(`NDCG@${K}`, 'ndcg', ndcg),
    '(the interval: 2,000 resamples of the shoppers evaluated, the spread a different sample would show)',
    '',
    `personalised answers: ${personalized} of ${shoppers.length}`,
    `GET /v1/profiles/{id}/recommendations over HTTP: p50 ${p50.toFixed(1)} ms, p95 ${p95.toFixed(1)} ms`,
    `target recall@${K} >= ${RECALL_TARGET_RATIO}x the baseline — ${recall.ratio >= RECALL_TARGET_RATIO ? 'met' : 'NOT met'}`,
    `target p95 < ${P95_TARGET_MS} ms — ${p95 < P95_TARGET_MS ? 'met' : 'NOT met'}`,
  ].join('\n');
}
