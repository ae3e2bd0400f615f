/** A real app on real stores in a temp directory, for route tests. */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { Registry } from 'prom-client';
import type { EventStore } from '../../eventstore/event-store.js';
import { openLmdbEventStore } from '../../eventstore/event-store.lmdb.js';
import { IdentifierHasher } from '../../privacy/identifiers.js';
import { openLmdbKeyStore } from '../../privacy/keystore.lmdb.js';
import type { SuppressionList } from '../../privacy/suppression.js';
import { openLmdbSuppressionList } from '../../privacy/suppression.lmdb.js';
import { buildApp } from '../../query-api/app.js';
import { createIngestor } from '../ingestor.js';
import { staticWriteKeys } from '../write-keys.js';

export const TEST_WRITE_KEY = 'wk_test_123';
export const BASIC_AUTH = `Basic ${Buffer.from(`${TEST_WRITE_KEY}:`).toString('base64')}`;

export interface TestIngestApp {
  readonly app: FastifyInstance;
  readonly eventStore: EventStore;
  readonly suppression: SuppressionList;
  readonly hasher: IdentifierHasher;
  close(): Promise<void>;
}

export async function openTestIngestApp(defaultCountryCode = '+86'): Promise<TestIngestApp> {
  const dir = await mkdtemp(join(tmpdir(), 'tandem-http-'));
  const eventStore = await openLmdbEventStore({ path: join(dir, 'eventstore') });
  const keyStore = await openLmdbKeyStore({ path: join(dir, 'keys'), masterKey: randomBytes(32) });
  const suppression = await openLmdbSuppressionList({ path: join(dir, 'suppression') });
  const hasher = new IdentifierHasher(randomBytes(32));
  const metrics = new Registry();
  const ingestor = createIngestor({
    eventStore,
    keyStore,
    suppression,
    hasher,
    normalise: { defaultCountryCode },
    metrics,
  });
  const app = await buildApp({
    ingestor,
    writeKeys: staticWriteKeys([{ key: TEST_WRITE_KEY, sourceId: 'test-source' }]),
    metrics,
  });
  return {
    app,
    eventStore,
    suppression,
    hasher,
    close: async () => {
      await app.close();
      await Promise.all([eventStore.close(), keyStore.close(), suppression.close()]);
      await rm(dir, { recursive: true, force: true });
    },
  };
}
