import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { aBatch, aShopper } from '../../fixtures/builders.js';
import { PosReceipt } from '../../schemas/pos.js';
import { DEFAULT_RECOMMENDATION_SETTINGS } from '../../schemas/recommendations.js';
import type { SegmentCall } from '../../schemas/segment.js';
import { selectRows } from '../../warehouse/select.js';
import { ADMIN, openTestApi, type TestApi } from '../testing/api-app.js';
import { scheduleModelRefreshes } from './reco-model.js';

let api: TestApi;
let marketer: string;
/** The strongest pair of the first model: a shopper who views `anchor` should be offered `neighbour`. */
let anchor: string;
let neighbour: string;

beforeAll(async () => {
  api = await openTestApi();
  marketer = await api.bearer('marketer');
});
afterAll(async () => {
  await api?.close();
});

const web = { kind: 'web', id: 'web-shop' } as const;

/** The call with a consent statement on it, as Segment's consent convention carries it. */
function stating(call: SegmentCall, personalization: boolean): SegmentCall {
  return {
    ...call,
    context: { ...call.context, consent: { categoryPreferences: { personalization } } },
  } as SegmentCall;
}

async function send(calls: SegmentCall[]): Promise<void> {
  await api.sample.ingestor.tracking(aBatch(calls), Date.parse('2026-01-31T00:00:00Z'), web);
}

async function profileOf(identifier: string): Promise<string> {
  const found = await api.app.inject({
    url: `/v1/profiles?identifier=${encodeURIComponent(identifier)}`,
    headers: { authorization: ADMIN },
  });
  expect(found.statusCode, found.body).toBe(200);
  return found.json().profileId;
}

async function recommend(profileId: string, query = '') {
  const answer = await api.app.inject({
    url: `/v1/profiles/${profileId}/recommendations${query}`,
    headers: { authorization: marketer },
  });
  expect(answer.statusCode, answer.body).toBe(200);
  return answer.json() as {
    personalized: boolean;
    store: string | null;
    items: {
      sku: string;
      category: string;
      score: number;
      reason: { type: string; text: string; because?: { sku: string; channel: string } };
    }[];
  };
}

async function refresh() {
  const done = await api.app.inject({
    method: 'POST',
    url: '/v1/recommendations/refresh',
    headers: { authorization: marketer },
  });
  expect(done.statusCode, done.body).toBe(200);
  return done.json() as { model: number; profiles: number; pairs: number };
}

async function storeCategories(storeId: string): Promise<string[]> {
  const [row] = await selectRows<{ categories: string[] }>(
    api.warehouse.client,
    'SELECT categories FROM tandem.stores WHERE store_id = {id:String}',
    { id: storeId },
  );
  return row?.categories ?? [];
}

describe('recommendations', () => {
  it('answers 503 until a model is trained, then trains one from consenting profiles only', async () => {
    const [someone] = await selectRows<{ profile_id: string }>(
      api.warehouse.client,
      "SELECT profile_id FROM tandem.profiles WHERE status = 'active' LIMIT 1",
    );
    const early = await api.app.inject({
      url: `/v1/profiles/${someone?.profile_id}/recommendations`,
      headers: { authorization: marketer },
    });
    expect(early.statusCode).toBe(503);
    expect(early.json().error.code).toBe('TANDEM_ERR_NOT_READY');

    const model = await refresh();
    expect(model.profiles).toBeGreaterThan(0);
    expect(model.pairs).toBeGreaterThan(0);
    const [trainers] = await selectRows<{ all: number; consenting: number; shared: number }>(
      api.warehouse.client,
      `SELECT count() AS all,
              countIf(profile_id IN (SELECT profile_id FROM tandem.consents
                                     WHERE purpose = 'personalization' AND granted)) AS consenting,
              countIf(profile_id IN (SELECT profile_id FROM tandem.profiles
                                     WHERE created_reason = 'shared')) AS shared
       FROM tandem.reco_model_profiles WHERE model = {model:UInt64}`,
      { model: model.model },
    );
    expect(trainers?.all).toBe(model.profiles);
    expect(trainers?.consenting).toBe(model.profiles);
    expect(trainers?.shared).toBe(0);
    const [pair] = await selectRows<{ sku: string; neighbour: string }>(
      api.warehouse.client,
      `SELECT sku, neighbour FROM tandem.reco_item_neighbours WHERE model = {model:UInt64}
       ORDER BY score DESC, sku, neighbour LIMIT 1`,
      { model: model.model },
    );
    anchor = pair?.sku as string;
    neighbour = pair?.neighbour as string;
  });

  it('personalises only while the profile consents: granted, never given, withdrawn, granted again', async () => {
    const gia = aShopper('reco-gia').withDevice('phone', 'app').build();
    const nell = aShopper('reco-nell').withDevice('laptop').build();
    const viewsOf = (shopper: typeof gia, device: string) =>
      shopper.on(device).views(anchor, '2026-01-29T10:00:00Z');
    await send([stating(viewsOf(gia, 'phone'), true), viewsOf(nell, 'laptop')]);
    await api.project();
    const giaId = await profileOf(`anonymous_id:${gia.devices.phone?.anonymousId}`);
    const nellId = await profileOf(`anonymous_id:${nell.devices.laptop?.anonymousId}`);

    const granted = await recommend(giaId);
    expect(granted.personalized).toBe(true);
    const offered = granted.items.find((item) => item.sku === neighbour);
    expect(offered?.reason).toMatchObject({
      type: 'similar_to_viewed',
      because: { sku: anchor, channel: 'online' },
    });
    expect(offered?.reason.text).toMatch(/^because you viewed .+ online$/);
    expect(granted.items.find((item) => item.sku === anchor)?.reason).toMatchObject({
      type: 'viewed',
      text: 'you viewed it online',
    });

    const never = await recommend(nellId);
    expect(never.personalized).toBe(false);
    expect(never.items.length).toBe(10);
    for (const item of never.items) expect(item.reason.type).toMatch(/^popular/);

    // A withdrawal applies to the next request once the statement is in the profile.
    await send([stating(gia.on('phone').views(anchor, '2026-01-30T10:00:00Z'), false)]);
    await api.project();
    const withdrawn = await recommend(giaId);
    expect(withdrawn.personalized).toBe(false);
    for (const item of withdrawn.items) expect(item.reason.type).toMatch(/^popular/);
    // …and its data leaves the model at the next refresh.
    const model = await refresh();
    const left = await selectRows(
      api.warehouse.client,
      'SELECT 1 FROM tandem.reco_model_profiles WHERE model = {model:UInt64} AND profile_id = {id:String}',
      { model: model.model, id: giaId },
    );
    expect(left).toEqual([]);

    await send([stating(gia.on('phone').views(anchor, '2026-01-30T11:00:00Z'), true)]);
    await api.project();
    expect((await recommend(giaId)).personalized).toBe(true);
  });

  it('in store without a store, filters by the preferred store of a consenting profile only', async () => {
    const [store] = await selectRows<{ store_id: string }>(
      api.warehouse.client,
      'SELECT store_id FROM tandem.stores ORDER BY store_id LIMIT 1 OFFSET 1',
    );
    const storeId = store?.store_id as string;
    const rae = aShopper('reco-rae').withMemberCard().build();
    const sid = aShopper('reco-sid').withMemberCard().build();
    const visit = (shopper: typeof rae, day: string, consent?: Record<string, boolean>) =>
      PosReceipt.parse(
        shopper.buysInStore({
          store: storeId,
          at: `2026-01-${day}T10:00:00Z`,
          skus: [anchor],
          showsMemberCard: true,
          ...(consent ? { consent } : {}),
        }),
      );
    await api.sample.ingestor.receipts(
      [visit(rae, '10', { personalization: true }), visit(rae, '12'), visit(sid, '10')],
      Date.parse('2026-01-31T00:00:00Z'),
      'till',
    );
    await api.project();
    const consenting = await recommend(
      await profileOf('member_id:M-reco-rae'),
      '?context=in_store',
    );
    expect(consenting.store).toBe(storeId);
    const sells = await storeCategories(storeId);
    for (const item of consenting.items) expect(sells).toContain(item.category);
    // Without consent, its visits do not choose the store: the answer any shopper gets.
    const other = await recommend(await profileOf('member_id:M-reco-sid'), '?context=in_store');
    expect(other.store).toBeNull();
    expect(other.personalized).toBe(false);
  });

  it('leaves out what the profile bought recently, and offers what it viewed and did not buy', async () => {
    const ola = aShopper('reco-ola').withAccount().withDevice('laptop').build();
    const laptop = ola.on('laptop');
    await send([
      stating(laptop.logsIn('2026-01-28T09:00:00Z'), true),
      laptop.views(anchor, '2026-01-28T09:01:00Z'),
      laptop.views(neighbour, '2026-01-28T09:02:00Z'),
      laptop.ordersOnline('O-reco-ola-1', [neighbour], '2026-01-28T09:05:00Z'),
    ]);
    await api.project();
    const answer = await recommend(await profileOf('user_id:user-reco-ola'), '?limit=20');
    expect(answer.personalized).toBe(true);
    expect(answer.items.map((item) => item.sku)).not.toContain(neighbour);
    // Viewed lately and not bought, and similar to what was bought: having looked at it says most.
    const again = answer.items.find((item) => item.sku === anchor);
    expect(again?.reason).toMatchObject({
      type: 'viewed',
      text: 'you viewed it online',
      because: { sku: anchor, channel: 'online' },
    });
  });

  it('offers the best sellers of the categories the profile shops, naming what it did there', async () => {
    // The category that sells most in the model's window, and two of its items nobody buys much.
    const model = await refresh();
    const sellers = await selectRows<{ category: string; sku: string; score: number }>(
      api.warehouse.client,
      `SELECT scope_id AS category, sku, score FROM tandem.reco_popularity
       WHERE model = {model:UInt64} AND scope = 'category'
         AND scope_id = (SELECT scope_id FROM tandem.reco_popularity
                         WHERE model = {model:UInt64} AND scope = 'category'
                         GROUP BY scope_id ORDER BY count() DESC, scope_id LIMIT 1)
       ORDER BY score DESC, sku`,
      { model: model.model },
    );
    const category = sellers[0]?.category as string;
    const shares = sellers.map((row) => Number(row.score));
    expect(shares.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
    const [browsed] = await selectRows<{ sku: string; name: string }>(
      api.warehouse.client,
      `SELECT sku, name FROM tandem.products WHERE category = {category:String}
       ORDER BY sku DESC LIMIT 1`,
      { category },
    );
    const pia = aShopper('reco-pia').withDevice('phone', 'app').build();
    const phone = pia.on('phone');
    await send([
      stating(phone.views(browsed?.sku as string, '2026-01-10T10:00:00Z'), true),
      phone.views(browsed?.sku as string, '2026-01-10T10:01:00Z'),
    ]);
    await api.project();
    const answer = await recommend(
      await profileOf(`anonymous_id:${pia.devices.phone?.anonymousId}`),
    );
    expect(answer.personalized).toBe(true);
    const fromCategory = answer.items.filter((item) => item.reason.type === 'favourite_category');
    expect(fromCategory.length).toBeGreaterThan(0);
    for (const item of fromCategory) {
      expect(item.category).toBe(category);
      expect(item.reason).toMatchObject({ because: { sku: browsed?.sku, channel: 'online' } });
      expect(item.reason.text).toBe(`popular in ${category}; you viewed ${browsed?.name} online`);
    }
    // All of the profile's interactions are in that category: the category's best sellers lead, in its order.
    expect(fromCategory[0]?.sku).toBe(sellers[0]?.sku);
    const ranked = sellers.map((row) => row.sku);
    const order = fromCategory.map((item) => ranked.indexOf(item.sku));
    expect(order).toEqual([...order].sort((a, b) => a - b));
  });

  it('with a store, offers only what that store sells, filling with its popular items', async () => {
    const [store] = await selectRows<{ store_id: string }>(
      api.warehouse.client,
      'SELECT store_id FROM tandem.stores ORDER BY store_id LIMIT 1',
    );
    const storeId = store?.store_id as string;
    const sells = await storeCategories(storeId);
    const [someone] = await selectRows<{ profile_id: string }>(
      api.warehouse.client,
      'SELECT profile_id FROM tandem.reco_model_profiles ORDER BY interactions DESC, profile_id LIMIT 1',
    );
    const answer = await recommend(
      someone?.profile_id as string,
      `?store=${storeId}&context=in_store&limit=15`,
    );
    expect(answer.store).toBe(storeId);
    expect(answer.items.length).toBe(15);
    for (const item of answer.items) expect(sells).toContain(item.category);

    const list = await api.app.inject({
      url: `/v1/stores/${storeId}/recommendations?limit=5`,
      headers: { authorization: marketer },
    });
    expect(list.statusCode, list.body).toBe(200);
    const items = list.json().items as { category: string; reason: { type: string } }[];
    expect(items).toHaveLength(5);
    expect(items[0]?.reason.type).toBe('popular_at_store');
    for (const item of items) expect(sells).toContain(item.category);
    const scores = (list.json().items as { score: number }[]).map((item) => item.score);
    expect(scores).toEqual([...scores].sort((a, b) => b - a));
  });

  it('refuses unknown profiles and stores, bad limits and the wrong role', async () => {
    const [someone] = await selectRows<{ profile_id: string }>(
      api.warehouse.client,
      "SELECT profile_id FROM tandem.profiles WHERE status = 'active' LIMIT 1",
    );
    const ask = (url: string, authorization = marketer) =>
      api.app.inject({ url, headers: { authorization } });
    expect((await ask('/v1/profiles/prf_nobody/recommendations')).statusCode).toBe(404);
    const noStore = await ask(`/v1/profiles/${someone?.profile_id}/recommendations?store=nowhere`);
    expect(noStore.statusCode).toBe(404);
    expect(noStore.json().error.message).toContain('nowhere');
    expect((await ask('/v1/stores/nowhere/recommendations')).statusCode).toBe(404);
    const bad = await ask(`/v1/profiles/${someone?.profile_id}/recommendations?limit=0&context=tv`);
    expect(bad.statusCode).toBe(400);
    const paths = bad.json().error.issues.map((issue: { path: string }) => issue.path);
    expect(paths).toEqual(expect.arrayContaining(['limit', 'context']));
    const analyst = await api.bearer('analyst');
    const forbidden = await ask(`/v1/profiles/${someone?.profile_id}/recommendations`, analyst);
    expect(forbidden.statusCode).toBe(403);
    expect(forbidden.json().error.message).toContain('marketer');
  });

  it('retrains on schedule only when the newest model is due', async () => {
    const models = async () =>
      (
        await selectRows<{ model: number }>(
          api.warehouse.client,
          'SELECT model FROM tandem.reco_models',
        )
      ).length;
    const before = await models();
    const schedule = (everyMinutes: number) =>
      scheduleModelRefreshes({
        warehouse: api.warehouse,
        settings: DEFAULT_RECOMMENDATION_SETTINGS,
        everyMinutes,
        log: pino({ level: 'silent' }),
        checkMs: 20,
      });
    const fresh = schedule(60);
    await new Promise((resolve) => setTimeout(resolve, 200));
    await fresh();
    expect(await models()).toBe(before);
    const due = schedule(1 / 600); // every 0.1 s
    await new Promise((resolve) => setTimeout(resolve, 300));
    await due();
    expect(await models()).toBeGreaterThan(before);
  });
});
