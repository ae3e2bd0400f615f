import { describe, expect, it } from 'vitest';
import type { RecordedEvent } from '../eventstore/event-store.js';
import { CatalogEventTypes, CatalogStreams } from '../schemas/catalog.js';
import { IdentityEventTypes as E } from '../schemas/identity.js';
import { columnNames, projectedTable } from '../warehouse/tables.js';
import { projectEvent, type Row, strongestIdentifier } from './rows.js';

const priority = ['user_id', 'member_id', 'email', 'phone', 'payment_token', 'anonymous_id'];
const hash = (letter: string) => letter.repeat(43);

function recorded(stream: string, type: string, data: Record<string, unknown>, commit = 7n) {
  return {
    id: '0b7e8f4e-1f0a-4c5e-9d7a-2f1e3c4b5a69',
    type,
    stream,
    revision: 0,
    position: { commit, prepare: commit },
    data,
    metadata: {},
    recordedAt: new Date('2026-01-02T00:00:00Z'),
  } as unknown as RecordedEvent;
}

/** The rows `event` becomes, by table; each row's fields must be columns of its table (others are not written). */
function rowsOf(event: RecordedEvent): Map<string, Row[]> {
  const out = new Map<string, Row[]>();
  projectEvent(
    event,
    { priority },
    {
      add(table, row) {
        expect(columnNames(projectedTable(table))).toEqual(
          expect.arrayContaining(Object.keys(row)),
        );
        out.set(table, [...(out.get(table) ?? []), row]);
      },
    },
  );
  return out;
}

describe(projectEvent.name, () => {
  it('turns a receipt into an event, an order and its lines, to the cent', () => {
    const rows = rowsOf(
      recorded('pos-store-1', 'pos.receipt', {
        id: 'x',
        type: 'pos.receipt',
        occurredAt: '2026-01-19T22:12:01.795Z',
        receivedAt: '2026-02-01T00:00:00.000Z',
        source: { kind: 'pos', id: 'tills', storeId: 'store-003' },
        identifiers: [
          { type: 'phone', hash: hash('p') },
          { type: 'member_id', hash: hash('m') },
        ],
        data: {
          channel: 'offline',
          receiptId: 'R-1',
          currency: 'USD',
          totalCents: 20246,
          lines: [
            { sku: 'SKU-1', quantity: 1, unitPrice: 103.99, discount: 0 },
            { sku: 'SKU-2', quantity: 2, unitPrice: 19.99, discount: 0 },
            { sku: 'SKU-3', quantity: 1, unitPrice: 64.99, discount: 6.5 },
          ],
        },
      }),
    );
    expect(rows.get('events')?.[0]).toMatchObject({
      occurred_at: '2026-01-19 22:12:01.795',
      channel: 'offline',
      store_id: 'store-003',
      event_name: 'Order Completed',
      order_id: 'R-1',
      revenue: '202.46',
      product_ids: ['SKU-1', 'SKU-2', 'SKU-3'],
      identifier_type: 'member_id',
      identifier_hash: hash('m'),
      position: 7,
    });
    // Named products: the same event again, under the identifier that made it.
    expect(rows.get('product_interactions')).toEqual([
      {
        identifier_hash: hash('m'),
        occurred_at: '2026-01-19 22:12:01.795',
        event_id: '0b7e8f4e-1f0a-4c5e-9d7a-2f1e3c4b5a69',
        event_name: 'Order Completed',
        channel: 'offline',
        store_id: 'store-003',
        product_ids: ['SKU-1', 'SKU-2', 'SKU-3'],
        position: 7,
      },
    ]);
    expect(rows.get('orders')?.[0]).toMatchObject({ revenue: '202.46', items: 4, lines: 3 });
    expect(rows.get('order_lines')?.map((line) => line.amount)).toEqual([
      '103.99',
      '39.98',
      '58.49',
    ]);
  });

  it('keeps a page view out of the orders and the product interactions, and attributes it to its device', () => {
    const rows = rowsOf(
      recorded('web-anon', 'page', {
        occurredAt: '2026-01-08T13:31:24.735Z',
        receivedAt: '2026-01-08T13:31:25.000Z',
        source: { kind: 'web', id: 'web-shop' },
        identifiers: [{ type: 'anonymous_id', hash: hash('a') }],
        data: { channel: 'online', name: 'snacks', context: { page: { path: '/c/snacks' } } },
      }),
    );
    expect([...rows.keys()]).toEqual(['events']);
    expect(rows.get('events')?.[0]).toMatchObject({
      event_name: 'Page Viewed',
      page_name: 'snacks',
      page_path: '/c/snacks',
      revenue: '0.00',
      identifier_type: 'anonymous_id',
    });
  });

  it('maps the identifiers of a merge to the survivor, versioned by the decision counter', () => {
    const rows = rowsOf(
      recorded('profile-prf_a', E.merged, {
        type: E.merged,
        profileId: 'prf_a',
        seq: 41,
        evidence: { eventId: 'e', position: '3/3' },
        absorbed: 'prf_b',
        identifiers: [{ type: 'email', hash: hash('e') }],
        bridge: [
          { type: 'user_id', hash: hash('u') },
          { type: 'email', hash: hash('e') },
        ],
      }),
    );
    expect(rows.get('identity')).toEqual([
      {
        identifier_hash: hash('e'),
        identifier_type: 'email',
        profile_id: 'prf_a',
        seq: 41,
        is_deleted: 0,
      },
    ]);
  });

  it('writes why a profile was created (the recommendation model leaves shared devices out by it)', () => {
    const rows = rowsOf(
      recorded('profile-prf_t', E.created, {
        type: E.created,
        profileId: 'prf_t',
        seq: 9,
        evidence: { eventId: 'e', position: '5/5' },
        identifiers: [{ type: 'anonymous_id', hash: hash('t') }],
        reason: 'shared',
      }),
    );
    expect(rows.get('profiles')).toEqual([
      { profile_id: 'prf_t', status: 'active', merged_into: '', created_reason: 'shared', seq: 9 },
    ]);
  });

  it('turns catalog upserts, each entry the data of its envelope, into products and stores rows', () => {
    const envelope = (type: string, data: Record<string, unknown>) => ({
      id: 'x',
      type,
      v: 1,
      source: { kind: 'pos', id: 'erp' },
      occurredAt: '2026-01-02T00:00:00.000Z',
      receivedAt: '2026-01-02T00:00:00.000Z',
      identifiers: [],
      data,
    });
    const product = { sku: 'SKU-1', name: 'Sneakers', category: 'sneakers', brand: 'Litware' };
    const products = rowsOf(
      recorded(
        CatalogStreams.products,
        CatalogEventTypes.product,
        envelope(CatalogEventTypes.product, { ...product, price: 103.99, currency: 'USD' }),
      ),
    );
    expect(products.get('products')).toEqual([
      { ...product, price: '103.99', currency: 'USD', position: 7 },
    ]);
    const store = {
      storeId: 'store-001',
      name: 'Chicago Loop',
      city: 'Chicago',
      district: 'Loop',
      lat: 41.8,
      lon: -87.6,
      timeZone: 'America/Chicago',
      categories: ['tea'],
    };
    const stores = rowsOf(
      recorded(
        CatalogStreams.stores,
        CatalogEventTypes.store,
        envelope(CatalogEventTypes.store, store),
      ),
    );
    expect(stores.get('stores')).toEqual([
      {
        store_id: 'store-001',
        name: 'Chicago Loop',
        city: 'Chicago',
        district: 'Loop',
        lat: 41.8,
        lon: -87.6,
        time_zone: 'America/Chicago',
        categories: ['tea'],
        position: 7,
      },
    ]);
  });
});

describe(strongestIdentifier.name, () => {
  it('prefers the strongest type, and any linkable identifier over a never-link placeholder', () => {
    const device = { type: 'anonymous_id', hash: hash('a') };
    const placeholder = { type: 'email', hash: hash('t'), neverLink: true as const };
    expect(strongestIdentifier([device, placeholder], priority)).toEqual(device);
    expect(strongestIdentifier([device, { type: 'email', hash: hash('e') }], priority)?.type).toBe(
      'email',
    );
    expect(strongestIdentifier([], priority)).toBeUndefined();
  });
});
