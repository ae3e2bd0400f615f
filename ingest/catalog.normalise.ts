/**
 * Catalog entries → pending facts. A product or a store is no one's personal
 * data: no identifiers, nothing to seal. Each entry becomes one upsert in its
 * catalog stream, the entry itself as the envelope's data.
 */
import { randomUUID } from 'node:crypto';
import { CatalogEventTypes, CatalogStreams, type Product, type Store } from '../schemas/catalog.js';
import type { Source } from '../schemas/envelope.js';
import type { PendingFact } from './fact.js';

export interface CatalogContext {
  readonly receivedAt: number;
  /** The sending system (the write key's source). */
  readonly sourceId: string;
}

/** One product as an upsert of `catalog-products`. */
export function normaliseProduct(product: Product, context: CatalogContext): PendingFact {
  return upsert(CatalogEventTypes.product, CatalogStreams.products, product, context);
}

/** One store as an upsert of `catalog-stores`. */
export function normaliseStore(store: Store, context: CatalogContext): PendingFact {
  return upsert(CatalogEventTypes.store, CatalogStreams.stores, store, context);
}

/**
 * Every upsert is a new event: the newest received wins. A catalogue goes
 * back to earlier content all the time (a sale ends, the old price returns),
 * so the content cannot be the event's identity. A retried request appends
 * the same content again, which changes nothing the tables show.
 */
function upsert(
  type: string,
  stream: string,
  entry: Product | Store,
  context: CatalogContext,
): PendingFact {
  const source: Source = { kind: 'pos', id: context.sourceId };
  const at = new Date(context.receivedAt).toISOString();
  return {
    envelope: {
      id: randomUUID(),
      type,
      v: 1,
      source,
      // An entry has no time of its own: it holds from when it was received.
      occurredAt: at,
      receivedAt: at,
      identifiers: [],
      data: { ...entry },
    },
    pii: undefined,
    subject: undefined,
    stream,
  };
}
