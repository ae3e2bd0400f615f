import { describe, expect, it } from 'vitest';
import type { RecordedEvent } from '../eventstore/event-store.js';
import { identityInput } from './fact.js';
import { id } from './testing/facts.js';

const at = '2026-01-10T09:00:00.000Z';

function recorded(stream: string, type: string, data: Record<string, unknown>): RecordedEvent {
  return {
    id: '2b6f8f4e-7d0c-4a53-9d5e-0c1f7b2a9e11',
    stream,
    type,
    revision: 0,
    position: { commit: 7n, prepare: 7n },
    recordedAt: new Date(at),
    data,
    metadata: {},
  } as RecordedEvent;
}

/** A fact as ingest writes it: the envelope of `schemas/envelope.ts`. */
const envelope = {
  id: '2b6f8f4e-7d0c-4a53-9d5e-0c1f7b2a9e11',
  type: 'pos.receipt',
  v: 1,
  source: { kind: 'pos', id: 'tills', storeId: 'store-001' },
  occurredAt: at,
  receivedAt: at,
  identifiers: [id('member_id:m-1')],
  data: { channel: 'offline' },
};

describe(identityInput.name, () => {
  it('reads a fact in ingest’s envelope: who, when, where', () => {
    const input = identityInput(recorded('member_id-x', 'pos.receipt', envelope));
    expect(input).toMatchObject({
      kind: 'fact',
      position: '7/7',
      at: Date.parse(at),
      channel: 'offline',
      sourceKind: 'pos',
      storeId: 'store-001',
      identifiers: [id('member_id:m-1')],
    });
  });

  it('passes over a system event that happens to carry `identifiers`: it links no one', () => {
    const system = { identifiers: [id('email:ana'), id('phone:1')], at };
    expect(identityInput(recorded('privacy-suppression', 'suppressed', system))).toBeUndefined();
    expect(
      identityInput(recorded('member_id-x', 'pos.receipt', { ...envelope, v: undefined })),
    ).toBeUndefined();
    expect(
      identityInput(
        recorded('member_id-x', 'pos.receipt', { ...envelope, source: { kind: 'mystery' } }),
      ),
    ).toBeUndefined();
  });

  it('passes over the resolver’s own profile events', () => {
    expect(identityInput(recorded('profile-prf_1', 'pos.receipt', envelope))).toBeUndefined();
  });
});
