import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { collect } from '../../eventstore/testing/helpers.js';
import { readSampleFiles } from '../../fixtures/sample.js';
import {
  CatalogEventTypes,
  CatalogStreams,
  type Product,
  type Store,
} from '../../schemas/catalog.js';
import { Envelope } from '../../schemas/envelope.js';
import { BASIC_AUTH, openTestIngestApp, type TestIngestApp } from '../testing/ingest-app.js';
import { catalogRoutes } from './catalog.routes.js';

const headers = { 'content-type': 'application/json', authorization: BASIC_AUTH };

const aProduct = (sku: string, price = 19.99): Product => ({
  sku,
  name: `Product ${sku}`,
  category: 'socks',
  brand: 'Litware',
  price,
  currency: 'USD',
});

const aStore = (storeId: string): Store => ({
  storeId,
  name: `Store ${storeId}`,
  city: 'Chicago',
  district: 'Loop',
  lat: 41.88,
  lon: -87.63,
  timeZone: 'America/Chicago',
  categories: ['socks', 'tea'],
});

describe(catalogRoutes.name, () => {
  let test: TestIngestApp;
  beforeAll(async () => {
    test = await openTestIngestApp('+1');
  });
  afterAll(() => test.close());

  const post = (what: 'products' | 'stores', payload: object, withKey = true) =>
    test.app.inject({
      method: 'POST',
      url: `/v1/catalog/${what}`,
      headers: withKey ? headers : { 'content-type': 'application/json' },
      payload,
    });
  /** The envelopes of a catalog stream whose entry key starts with `prefix`. */
  const stored = async (stream: string, prefix: string) =>
    (await collect(test.eventStore.readStream(stream)))
      .map((event) => ({ type: event.type, envelope: Envelope.parse(event.data) }))
      .filter(({ envelope }) =>
        String(envelope.data.sku ?? envelope.data.storeId).startsWith(prefix),
      );
  const sampleLines = async (file: string) =>
    String((await readSampleFiles()).get(file))
      .trimEnd()
      .split('\n')
      .map((line) => JSON.parse(line) as Record<string, unknown>);

  it('takes one product, or the sample’s catalog as an array, each as an upsert in catalog-products', async () => {
    const one = await post('products', aProduct('ONE-1'));
    expect(one.statusCode, one.body).toBe(200);
    expect(one.json()).toEqual({ success: true, accepted: 1 });
    const [event] = await stored(CatalogStreams.products, 'ONE-');
    expect(event?.type).toBe(CatalogEventTypes.product);
    expect(event?.envelope).toMatchObject({
      type: CatalogEventTypes.product,
      source: { kind: 'pos', id: 'test-source' },
      identifiers: [],
      data: aProduct('ONE-1'),
    });
    expect(event?.envelope.occurredAt).toBe(event?.envelope.receivedAt);
    expect(event?.envelope.pii).toBeUndefined();

    const catalog = await sampleLines('catalog.ndjson');
    expect(catalog).toHaveLength(200);
    const many = await post('products', catalog);
    expect(many.statusCode, many.body).toBe(200);
    expect(many.json()).toEqual({ success: true, accepted: catalog.length });
    expect(await stored(CatalogStreams.products, 'SKU-')).toHaveLength(catalog.length);
  });

  it('takes one store, or the sample’s stores as an array, each as an upsert in catalog-stores', async () => {
    const one = await post('stores', aStore('one-store'));
    expect(one.statusCode, one.body).toBe(200);
    expect(one.json()).toEqual({ success: true, accepted: 1 });
    const [event] = await stored(CatalogStreams.stores, 'one-');
    expect(event?.type).toBe(CatalogEventTypes.store);
    expect(event?.envelope.data).toEqual(aStore('one-store'));

    const stores = await sampleLines('stores.ndjson');
    const many = await post('stores', stores);
    expect(many.statusCode, many.body).toBe(200);
    expect(many.json()).toEqual({ success: true, accepted: stores.length });
    expect(await stored(CatalogStreams.stores, 'store-')).toHaveLength(stores.length);
  });

  it('appends every upsert, so the newest wins even when it returns to earlier content', async () => {
    const regular = aProduct('SALE-1', 19.99);
    const onSale = aProduct('SALE-1', 14.99);
    for (const entry of [regular, onSale, regular])
      expect((await post('products', entry)).json()).toEqual({ success: true, accepted: 1 });
    const events = await stored(CatalogStreams.products, 'SALE-');
    // The sale ended: the regular price is the newest upsert again.
    expect(events.map(({ envelope }) => envelope.data.price)).toEqual([19.99, 14.99, 19.99]);

    const store = aStore('moved-store');
    const moved = { ...store, categories: [...store.categories, 'coffee'] };
    for (const entry of [store, moved]) expect((await post('stores', entry)).statusCode).toBe(200);
    expect(
      (await stored(CatalogStreams.stores, 'moved-')).map(({ envelope }) => envelope.data),
    ).toEqual([store, moved]);
  });

  it('refuses a request without a write key, or with an unknown one', async () => {
    const none = await post('products', aProduct('NOKEY-1'), false);
    expect(none.statusCode).toBe(401);
    expect(none.json().error.code).toBe('TANDEM_ERR_UNAUTHORIZED');
    const unknown = await test.app.inject({
      method: 'POST',
      url: '/v1/catalog/stores',
      headers: {
        'content-type': 'application/json',
        authorization: `Basic ${Buffer.from('wk_nobody:').toString('base64')}`,
      },
      payload: aStore('nokey-store'),
    });
    expect(unknown.statusCode).toBe(401);
    expect(await stored(CatalogStreams.products, 'NOKEY-')).toHaveLength(0);
    expect(await stored(CatalogStreams.stores, 'nokey-')).toHaveLength(0);
  });

  it('refuses bad entries with the path of every bad field, storing none of the request', async () => {
    const products = [
      aProduct('BAD-0'),
      { ...aProduct('BAD-1'), price: -1 },
      aProduct('BAD-2'),
      { ...aProduct('BAD-3'), currency: 'usd', colour: 'red' },
      { ...aProduct('BAD-4'), price: '12.99' },
    ];
    const response = await post('products', products);
    expect(response.statusCode).toBe(400);
    const paths = (body: { error: { issues: { path: string }[] } }) =>
      body.error.issues.map((issue) => issue.path).sort();
    expect(paths(response.json())).toEqual(['1.price', '3', '3.currency', '4.price']);
    expect(await stored(CatalogStreams.products, 'BAD-')).toHaveLength(0);

    const one = await post('products', { ...aProduct('BAD-5'), price: '12.99' });
    expect(one.statusCode).toBe(400);
    expect(paths(one.json())).toEqual(['price']);

    const stores = await post('stores', [aStore('bad-0'), { ...aStore('bad-1'), lat: 91 }]);
    expect(stores.statusCode).toBe(400);
    expect(paths(stores.json())).toEqual(['1.lat']);
    expect(await stored(CatalogStreams.stores, 'bad-')).toHaveLength(0);
  });

  it('refuses more than 1000 entries, and an empty array, storing none', async () => {
    const products = Array.from({ length: 1001 }, (_, i) => aProduct(`MANY-${i}`));
    const response = await post('products', products);
    expect(response.statusCode).toBe(400);
    expect(response.json().error.message).toMatch(/<=1000 items/);
    expect((await post('products', [])).statusCode).toBe(400);
    expect(await stored(CatalogStreams.products, 'MANY-')).toHaveLength(0);
  });
});
