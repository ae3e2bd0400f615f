import { describe, expect, it } from 'vitest';
import { piiKindOf } from './pii.js';
import { PosReceipt } from './pos.js';
import { SegmentBatch, SegmentCall, SegmentTraits } from './segment.js';

const paths = (result: { success: boolean; error?: { issues: { path: PropertyKey[] }[] } }) =>
  result.success ? [] : (result.error?.issues ?? []).map((issue) => issue.path.join('.'));

describe('SegmentCall', () => {
  const track = {
    type: 'track',
    event: 'Product Viewed',
    anonymousId: 'a-1',
    timestamp: '2026-03-01T10:00:00.000Z',
  };

  it('accepts what SDKs send, including fields it does not model', () => {
    expect(
      SegmentCall.parse({ ...track, _metadata: { bundled: [] }, channel: 'client' }),
    ).toMatchObject({ _metadata: { bundled: [] } });
    expect(SegmentCall.safeParse({ type: 'alias', previousId: 'a-1', userId: 'u-1' }).success).toBe(
      true,
    );
  });

  it('requires userId or anonymousId, as Segment does', () => {
    expect(paths(SegmentCall.safeParse({ type: 'track', event: 'x' }))).toEqual(['userId']);
  });

  it('names the path of each bad field inside a batch', () => {
    const result = SegmentBatch.safeParse({
      batch: [
        track,
        { ...track, event: '' },
        { ...track, type: 'teleport' },
        { ...track, timestamp: 'yesterday' },
      ],
    });
    expect(paths(result)).toEqual(['batch.1.event', 'batch.2.type', 'batch.3.timestamp']);
  });

  it('marks personal traits for sealing', () => {
    expect(piiKindOf(SegmentTraits.shape.email)).toBe('email');
    expect(piiKindOf(SegmentTraits.shape.phone)).toBe('phone');
  });
});

describe('PosReceipt', () => {
  const receipt = {
    receiptId: 'R-1',
    storeId: 'store-001',
    registerId: 'reg-1',
    occurredAt: '2026-03-01T18:15:00.000+08:00',
    currency: 'CNY',
    lines: [
      { sku: 'SKU-1', quantity: 2, unitPrice: 19.9, discount: 4 },
      { sku: 'SKU-2', quantity: 1, unitPrice: 5.5 },
    ],
    tenders: [{ type: 'card', amount: 41.3, cardToken: 'tok_1' }],
  };

  it('accepts a receipt whose tenders add up to its lines', () => {
    expect(PosReceipt.parse(receipt).lines[1]?.discount).toBe(0);
  });

  it('refuses tenders that do not add up, and names the field', () => {
    expect(
      paths(PosReceipt.safeParse({ ...receipt, tenders: [{ type: 'cash', amount: 40 }] })),
    ).toEqual(['tenders']);
  });

  it('refuses bad lines, currencies and unknown fields with their paths', () => {
    const result = PosReceipt.safeParse({
      ...receipt,
      currency: 'rmb',
      lines: [{ sku: 'SKU-1', quantity: 0, unitPrice: -1 }],
      cashier: 'Wang',
    });
    expect(paths(result)).toEqual(
      expect.arrayContaining(['currency', 'lines.0.quantity', 'lines.0.unitPrice', '']),
    );
  });
});
