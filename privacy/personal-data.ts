/**
 * Reading personal data back: the sealed blocks of a subject's events
 * (one identifier's stream), unsealed with its data key. Only the roles
 * allowed to see people's data reach this, and an erased subject yields
 * nothing: its key is gone.
 */
import type { EventReader } from '../eventstore/event-store.js';
import { readStreamIfExists } from '../eventstore/read-stream.js';
import type { Envelope } from '../schemas/envelope.js';
import type { Identifier } from '../schemas/identifier.js';
import type { KeyStore } from './keystore.js';
import { unseal } from './seal.js';

/** The stream ingest files an identifier's events under (its subject). */
export function subjectStream(identifier: Identifier): string {
  return `${identifier.type}-${identifier.hash}`;
}

/**
 * The newest value of each personal field (`traits.email`, `userId`,
 * `customer.phone`…) among the latest `maxEvents` events of the identifier's
 * stream. Fields sealed under a destroyed key are simply absent.
 */
export async function latestPersonalData(
  reader: Pick<EventReader, 'readStream'>,
  keyStore: Pick<KeyStore, 'find'>,
  identifier: Identifier,
  maxEvents = 50,
): Promise<Record<string, unknown>> {
  const fields: Record<string, unknown> = {};
  const newest = readStreamIfExists(reader, subjectStream(identifier), {
    direction: 'backwards',
    maxCount: maxEvents,
  });
  for await (const event of newest) {
    const { pii, id } = event.data as unknown as Envelope;
    if (!pii) continue;
    const key = await keyStore.find(pii.keyId);
    if (!key) continue;
    const values = unseal(pii, key, id) as Record<string, unknown>;
    for (const [field, value] of Object.entries(values))
      if (!(field in fields)) fields[field] = value;
  }
  return fields;
}
