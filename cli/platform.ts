/**
 * Wires the parts of the running platform: the ingest pipeline with its key
 * store, suppression list and secrets, and the HTTP app. The composition
 * root for `tandem serve` and `tandem start`.
 */
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { Registry } from 'prom-client';
import { createIngestor, type Ingestor } from '../ingest/ingestor.js';
import { staticWriteKeys } from '../ingest/write-keys.js';
import { IdentifierHasher } from '../privacy/identifiers.js';
import { openLmdbKeyStore } from '../privacy/keystore.lmdb.js';
import { loadSecret } from '../privacy/secrets.js';
import { openLmdbSuppressionList } from '../privacy/suppression.lmdb.js';
import { buildApp } from '../query-api/app.js';
import { neverLinkTest } from '../schemas/identity.js';
import type { Runtime } from './runtime.js';

export interface Platform {
  readonly app: FastifyInstance;
  /** The URL the server listens on. */
  readonly address: string;
  /** The bootstrap write key, and whether it was generated on this start (local use only). */
  readonly writeKey: { readonly value: string; readonly generated: boolean };
  /** Stops accepting requests, finishes those in flight, closes the stores the platform opened. */
  close(): Promise<void>;
}

export interface IngestSide {
  readonly ingestor: Ingestor;
  readonly metrics: Registry;
  readonly writeKey: { readonly value: string; readonly generated: boolean };
  close(): Promise<void>;
}

/** Opens what ingest needs beside the log: secrets, key store, suppression list. */
export async function openIngest(runtime: Runtime): Promise<IngestSide> {
  const { config, logger, eventStore } = runtime;
  const { secrets } = config;
  const master = await loadSecret({
    variable: 'TANDEM_MASTER_KEY',
    value: secrets.masterKey,
    file: join(secrets.directory, 'master.key'),
  });
  const hashing = await loadSecret({
    variable: 'TANDEM_HASH_SECRET',
    value: secrets.hashSecret,
    file: join(secrets.directory, 'hash.secret'),
  });
  const writeKey = secrets.writeKey
    ? { value: secrets.writeKey, generated: false }
    : await loadSecret({
        variable: 'TANDEM_WRITE_KEY',
        value: undefined,
        file: join(secrets.directory, 'write.key'),
      }).then(({ secret, generated }) => ({
        value: `wk_${secret.toString('base64url')}`,
        generated,
      }));
  for (const [name, loaded] of [
    ['master key', master],
    ['hash secret', hashing],
  ] as const) {
    if (loaded.generated)
      logger.warn(
        { directory: secrets.directory },
        `generated a ${name} for this data directory; set it in the environment for production`,
      );
  }
  const keyStore = await openLmdbKeyStore({
    path: join(config.dataDir, 'keystore'),
    masterKey: master.secret,
  });
  const suppression = await openLmdbSuppressionList({ path: join(config.dataDir, 'suppression') });
  const metrics = new Registry();
  const ingestor = createIngestor({
    eventStore,
    keyStore,
    suppression,
    hasher: new IdentifierHasher(hashing.secret),
    normalise: {
      defaultCountryCode: config.defaultPhoneCountryCode,
      neverLink: neverLinkTest(runtime.identityRules),
    },
    metrics,
  });
  return {
    ingestor,
    metrics,
    writeKey,
    close: async () => {
      await Promise.all([keyStore.close(), suppression.close()]);
    },
  };
}

/** Opens the ingest side and starts the HTTP server on the configured address. */
export async function startPlatform(
  runtime: Runtime,
  listen: { host: string; port: number },
): Promise<Platform> {
  const ingest = await openIngest(runtime);
  const writeKeys = staticWriteKeys([{ key: ingest.writeKey.value, sourceId: 'default' }]);
  const app = await buildApp({
    ingestor: ingest.ingestor,
    writeKeys,
    metrics: ingest.metrics,
    logger: runtime.logger,
  });
  const address = await app.listen({ host: listen.host, port: listen.port });
  return {
    app,
    address,
    writeKey: ingest.writeKey,
    close: async () => {
      await app.close();
      await ingest.close();
    },
  };
}
