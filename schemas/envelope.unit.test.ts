import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { Envelope } from './envelope.js';

const hash = 'q1LnH0mC8y9cV3r0kP2xZs7dF4tB6wA5eJ1uN8oR2iY';

function anEnvelope(overrides: Record<string, unknown> = {}) {
  return {
    id: randomUUID(),
    type: 'pos.receipt',
    v: 1,
    source: { kind: 'pos', id: 'till-system', storeId: 'store-017' },
    occurredAt: '2026-11-20T09:15:00.000Z',
    receivedAt: '2026-11-20T09:15:02.125Z',
    identifiers: [{ type: 'member_id', hash }],
    data: { receiptId: 'R-1', total: 129.5, lines: [{ sku: 'SKU-1', qty: 1 }] },
    pii: {
      alg: 'A256GCM',
      keyId: 'k-1',
      iv: 'AAAAAAAAAAAAAAAA',
      tag: 'BBBBBBBBBBBBBBBBBBBBBB',
      ciphertext: 'Q0lQSEVS',
    },
    ...overrides,
  };
}

function issuePaths(value: unknown): string[] {
  const result = Envelope.safeParse(value);
  return result.success ? [] : result.error.issues.map((issue) => issue.path.join('.'));
}

describe('Envelope', () => {
  it('accepts an offline fact with identifiers, data and sealed PII', () => {
    expect(Envelope.parse(anEnvelope()).source.storeId).toBe('store-017');
  });

  it('accepts an online fact without PII and with a configured identifier type', () => {
    const envelope = anEnvelope({
      type: 'track',
      source: { kind: 'web', id: 'web-shop' },
      identifiers: [{ type: 'wechat_openid', hash }],
      pii: undefined,
    });
    expect(Envelope.safeParse(envelope).success).toBe(true);
  });

  it('names the path of every bad field', () => {
    const paths = issuePaths(
      anEnvelope({
        id: 'x',
        type: 'Pos Receipt',
        v: 2,
        source: { kind: 'fax', id: '' },
        occurredAt: '20 Nov 2026',
        identifiers: [{ type: 'email', hash: 'ana@example.com' }],
      }),
    );
    expect(paths).toEqual(
      expect.arrayContaining([
        'id',
        'type',
        'v',
        'source.kind',
        'source.id',
        'occurredAt',
        'identifiers.0.hash',
      ]),
    );
  });

  it('refuses a raw email where a keyed hash belongs', () => {
    expect(
      issuePaths(anEnvelope({ identifiers: [{ type: 'email', hash: 'ana@example.com' }] })),
    ).toEqual(['identifiers.0.hash']);
  });

  it('refuses unknown keys, so nothing unvetted slips into the log', () => {
    expect(issuePaths(anEnvelope({ email: 'ana@example.com' }))).toEqual(['']);
    expect(issuePaths(anEnvelope({ source: { kind: 'web', id: 'w', ip: '10.0.0.1' } }))).toEqual([
      'source',
    ]);
  });

  it('refuses data that is not JSON', () => {
    expect(issuePaths(anEnvelope({ data: { total: 10n } }))).toEqual(['data.total']);
  });

  it('takes timestamps only in the canonical UTC millisecond form', () => {
    expect(issuePaths(anEnvelope({ occurredAt: '2026-11-20T09:15:00Z' }))).toEqual(['occurredAt']);
    expect(issuePaths(anEnvelope({ occurredAt: '2026-11-20T17:15:00.000+08:00' }))).toEqual([
      'occurredAt',
    ]);
  });
});
