import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { eventCsvRow, IdentifierRecovery, withPersonalFields } from './access-export.events.js';
import { IdentifierHasher } from './identifiers.js';

describe(withPersonalFields.name, () => {
  it('puts each personal field back at its path, into objects and arrays, without touching the input', () => {
    const data = {
      traits: { plan: 'gold' },
      tenders: [{ type: 'card', amount: 20 }],
      properties: { items: ['a', null] },
    };
    const restored = withPersonalFields(data, {
      userId: 'u-1',
      'traits.email': 'ana@example.com',
      'traits.address': { city: 'Lyon' },
      'tenders.0.cardToken': 'tok_1',
      'properties.items.1': 'ana@example.com',
      'context.ip': '10.0.0.1',
    });
    expect(restored).toEqual({
      userId: 'u-1',
      traits: { plan: 'gold', email: 'ana@example.com', address: { city: 'Lyon' } },
      tenders: [{ type: 'card', amount: 20, cardToken: 'tok_1' }],
      properties: { items: ['a', 'ana@example.com'] },
      context: { ip: '10.0.0.1' },
    });
    expect(data).toEqual({
      traits: { plan: 'gold' },
      tenders: [{ type: 'card', amount: 20 }],
      properties: { items: ['a', null] },
    });
  });

  it('keeps a `__proto__` in a path as a plain field, never reaching a prototype', () => {
    const restored = withPersonalFields({}, { 'properties.__proto__.email': 'x@example.com' });
    expect(({} as Record<string, unknown>).email).toBeUndefined();
    expect(JSON.parse(JSON.stringify(restored))).toEqual({
      properties: { ['__proto__']: { email: 'x@example.com' } },
    });
  });
});

describe(IdentifierRecovery.name, () => {
  it('learns the plain value of each identifier from values that hash to it, normalised', () => {
    const hasher = new IdentifierHasher(randomBytes(32));
    const email = hasher.hash('email', 'ana@example.com');
    const phone = hasher.hash('phone', '+8613800138000');
    const token = hasher.hash('payment_token', 'tok_never_seen');
    const recovery = new IdentifierRecovery([email, phone, token], hasher, {});
    for (const value of ['Product Viewed', ' Ana@Example.com ', '+86 138 0013 8000', 42])
      recovery.offer(value);
    expect(recovery.valueOf(email)).toBe('ana@example.com');
    expect(recovery.valueOf(phone)).toBe('+8613800138000');
    expect(recovery.valueOf(token)).toBeUndefined();
    expect(recovery.recovered).toBe(2);
  });
});

describe(eventCsvRow.name, () => {
  it('flattens a store receipt to the columns of an order', () => {
    const row = eventCsvRow({
      eventId: 'e-1',
      filedUnder: 'member_id',
      type: 'pos.receipt',
      occurredAt: '2026-01-12T15:00:00.000Z',
      receivedAt: '2026-01-12T15:01:00.000Z',
      source: { kind: 'pos', id: 'tills', storeId: 'store-001' },
      data: { channel: 'offline', receiptId: 'R-1', currency: 'USD', totalCents: 2050 },
      personalData: 'restored',
    });
    expect(row).toMatchObject({
      channel: 'offline',
      source_kind: 'pos',
      store_id: 'store-001',
      event_name: 'Order Completed',
      order_id: 'R-1',
      revenue: '20.50',
      currency: 'USD',
    });
  });
});
