import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { collect } from '../../eventstore/testing/helpers.js';
import { aShopper } from '../../fixtures/builders.js';
import { readSampleFiles } from '../../fixtures/sample.js';
import { Envelope } from '../../schemas/envelope.js';
import { BASIC_AUTH, openTestIngestApp, type TestIngestApp } from '../testing/ingest-app.js';
import { posRoutes } from './pos.routes.js';

const headers = { 'content-type': 'application/json', authorization: BASIC_AUTH };

describe(posRoutes.name, () => {
  let test: TestIngestApp;
  beforeAll(async () => {
    test = await openTestIngestApp('+1');
  });
  afterAll(() => test.close());
  const receiptsInLog = async () =>
    (await collect(test.eventStore.readAll({ filter: { eventTypePrefixes: ['pos.'] } }))).length;

  it('takes one receipt, or the sample’s receipts as an array, and stores each once', async () => {
    const sample = String((await readSampleFiles()).get('pos/receipts.ndjson'))
      .trimEnd()
      .split('\n');
    const receipts = sample.map((line) => JSON.parse(line) as unknown);
    expect(receipts.length).toBeGreaterThan(100);
    const one = await test.app.inject({
      method: 'POST',
      url: '/v1/pos/receipts',
      headers,
      payload: receipts[0] as object,
    });
    expect(one.statusCode, one.body).toBe(200);
    expect(one.json()).toEqual({ success: true, accepted: 1, suppressed: 0 });
    const many = await test.app.inject({
      method: 'POST',
      url: '/v1/pos/receipts',
      headers,
      payload: receipts,
    });
    expect(many.statusCode, many.body).toBe(200);
    expect(many.json()).toEqual({ success: true, accepted: receipts.length, suppressed: 0 });
    expect(await receiptsInLog()).toBe(receipts.length);
  });

  it('keeps the member card, the till phone and card tokens out of the log, as hashes and sealed fields', async () => {
    const eve = aShopper('pos-eve').withPhone().withMemberCard().build();
    const receipt = eve.buysInStore({
      store: 'store-009',
      at: '2026-04-01T10:00:00+08:00',
      skus: ['SKU-1', 'SKU-2'],
      showsMemberCard: true,
      typesPhone: true,
    });
    expect(
      (
        await test.app.inject({
          method: 'POST',
          url: '/v1/pos/receipts',
          headers,
          payload: receipt,
        })
      ).statusCode,
    ).toBe(200);
    const [event] = await collect(
      test.eventStore.readStream(`member_id-${test.hasher.hash('member_id', 'M-pos-eve').hash}`),
    );
    const envelope = Envelope.parse(event?.data);
    expect(envelope.identifiers.map((identifier) => identifier.type).sort()).toEqual([
      'member_id',
      'payment_token',
      'phone',
    ]);
    expect(envelope.occurredAt).toBe('2026-04-01T02:00:00.000Z');
    const stored = JSON.stringify(envelope);
    for (const secret of ['M-pos-eve', eve.phone as string, eve.cardToken])
      expect(stored).not.toContain(secret);
  });

  it('refuses a bad receipt in an array with its index and field, storing none of them', async () => {
    const fay = aShopper('pos-fay').build();
    const good = fay.buysInStore({
      store: 'store-001',
      at: '2026-04-02T10:00:00Z',
      skus: ['SKU-1'],
    });
    const before = await receiptsInLog();
    const response = await test.app.inject({
      method: 'POST',
      url: '/v1/pos/receipts',
      headers,
      payload: [good, { ...good, receiptId: 'R-2', tenders: [{ type: 'cash', amount: 1 }] }],
    });
    expect(response.statusCode).toBe(400);
    expect(response.json().error.issues.map((issue: { path: string }) => issue.path)).toContain(
      '1.tenders',
    );
    expect(await receiptsInLog()).toBe(before);
  });

  it('refuses a request without a write key', async () => {
    const response = await test.app.inject({
      method: 'POST',
      url: '/v1/pos/receipts',
      payload: {},
    });
    expect([400, 401]).toContain(response.statusCode);
  });
});
