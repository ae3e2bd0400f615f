/**
 * A real log for tests downstream of ingest: the sample fixtures sent
 * through the real ingest pipeline into LMDB in a temp directory.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import type { EventStore } from '../../eventstore/event-store.js';
import { openLmdbEventStore } from '../../eventstore/event-store.lmdb.js';
import { readSampleFiles } from '../../fixtures/sample.js';
import { IdentifierHasher } from '../../privacy/identifiers.js';
import type { KeyStore } from '../../privacy/keystore.js';
import { openLmdbKeyStore } from '../../privacy/keystore.lmdb.js';
import { openLmdbSuppressionList } from '../../privacy/suppression.lmdb.js';
import { Product, Store } from '../../schemas/catalog.js';
import { DEFAULT_IDENTITY_RULES, neverLinkTest } from '../../schemas/identity.js';
import { PosReceipt } from '../../schemas/pos.js';
import { SegmentBatch } from '../../schemas/segment.js';
import { createIngestor, type Ingestor } from '../ingestor.js';

export interface SampleLog {
  /** The temp directory holding the log (and whatever else a test puts there). */
  readonly dir: string;
  readonly eventStore: EventStore;
  readonly ingestor: Ingestor;
  readonly hasher: IdentifierHasher;
  /** The data keys PII was sealed under. */
  readonly keyStore: KeyStore;
  /** Closes the stores and removes the directory. */
  close(): Promise<void>;
}

/** When the sample is received: after its last event, so no clock skew correction moves it. */
export const SAMPLE_RECEIVED_AT = Date.parse('2026-02-01T00:00:00Z');

/** A fresh log in a temp directory, with an ingestor writing to it; `ingestSample` fills it. */
export async function openSampleLog(prefix = 'tandem-sample-'): Promise<SampleLog> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  const hasher = new IdentifierHasher(randomBytes(32));
  const eventStore = await openLmdbEventStore({ path: join(dir, 'eventstore') });
  const keyStore = await openLmdbKeyStore({ path: join(dir, 'keys'), masterKey: randomBytes(32) });
  const suppression = await openLmdbSuppressionList({ path: join(dir, 'suppression') });
  const ingestor = createIngestor({
    eventStore,
    keyStore,
    suppression,
    hasher,
    normalise: { defaultCountryCode: '+1', neverLink: neverLinkTest(DEFAULT_IDENTITY_RULES) },
    metrics: new Registry(),
  });
  return {
    dir,
    eventStore,
    ingestor,
    hasher,
    keyStore,
    async close() {
      await Promise.all([eventStore.close(), keyStore.close(), suppression.close()]);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Sends the sample's catalog and stores, clickstream (as the web shop) and receipts (as the tills) through ingest. */
export async function ingestSample(ingestor: Ingestor): Promise<void> {
  const sample = await readSampleFiles();
  const lines = (file: string) => String(sample.get(file)).trimEnd().split('\n');
  await ingestor.catalog(
    {
      products: lines('catalog.ndjson').map((line) => Product.parse(JSON.parse(line))),
      stores: lines('stores.ndjson').map((line) => Store.parse(JSON.parse(line))),
    },
    SAMPLE_RECEIVED_AT,
    'catalog',
  );
  for (const line of lines('clickstream.ndjson'))
    await ingestor.tracking(SegmentBatch.parse(JSON.parse(line)), SAMPLE_RECEIVED_AT, {
      kind: 'web',
      id: 'web-shop',
    });
  await ingestor.receipts(
    lines('pos/receipts.ndjson').map((line) => PosReceipt.parse(JSON.parse(line))),
    SAMPLE_RECEIVED_AT,
    'tills',
  );
}
