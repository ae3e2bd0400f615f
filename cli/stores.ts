/**
 * Opening what the platform and the commands run on, beside the log: the
 * ingest side (secrets, key store, suppression list, the ingestor), the
 * configured warehouse (migrated), and where the secrets and the identity
 * snapshot live in the data directory.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { collectDefaultMetrics, Registry } from 'prom-client';
import { createIngestor, type Ingestor } from '../ingest/ingestor.js';
import { IdentifierHasher, type NormaliseOptions } from '../privacy/identifiers.js';
import type { KeyStore } from '../privacy/keystore.js';
import { openLmdbKeyStore } from '../privacy/keystore.lmdb.js';
import { openLogKeyStore } from '../privacy/keystore.log.js';
import { loadSecret } from '../privacy/secrets.js';
import type { SuppressionList } from '../privacy/suppression.js';
import { openLmdbSuppressionList } from '../privacy/suppression.lmdb.js';
import { openLogSuppressionList } from '../privacy/suppression.log.js';
import type { Config } from '../schemas/config.js';
import { ErrorCodes, TandemError } from '../schemas/errors.js';
import { neverLinkTest } from '../schemas/identity.js';
import { migrate } from '../warehouse/migrations.js';
import { openWarehouse, type Warehouse } from '../warehouse/warehouse.js';
import type { Runtime } from './runtime.js';

export interface IngestSide {
  readonly ingestor: Ingestor;
  readonly metrics: Registry;
  readonly writeKey: { readonly value: string; readonly generated: boolean };
  readonly keyStore: KeyStore;
  readonly suppression: SuppressionList;
  readonly hasher: IdentifierHasher;
  readonly normalise: NormaliseOptions;
  close(): Promise<void>;
}

/** Opens what ingest needs beside the log: secrets, key store, suppression list (embedded, or in the log in server mode). */
export async function openIngest(runtime: Runtime): Promise<IngestSide> {
  const { config, logger, eventStore } = runtime;
  const { secrets } = config;
  if (config.eventStore.kind !== 'lmdb') requireSharedSecrets(config);
  const master = await loadSecret({
    variable: 'TANDEM_MASTER_KEY',
    value: secrets.masterKey,
    file: join(secrets.directory, 'master.key'),
  });
  const hashing = await loadHashSecret(config);
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
  // Embedded, beside the log in the data directory; in server mode, in the log itself, shared by every process.
  const embedded = config.eventStore.kind === 'lmdb';
  const keyStore = embedded
    ? await openLmdbKeyStore({ path: join(config.dataDir, 'keystore'), masterKey: master.secret })
    : openLogKeyStore({ eventStore, masterKey: master.secret });
  const suppression = embedded
    ? await openLmdbSuppressionList({ path: join(config.dataDir, 'suppression') })
    : await openLogSuppressionList({ eventStore, log: logger.child({ part: 'suppression' }) });
  const metrics = new Registry();
  // Node's own: resident memory, heap, event-loop delay, GC (the standard names dashboards expect).
  collectDefaultMetrics({ register: metrics });
  const hasher = new IdentifierHasher(hashing.secret);
  const normalise: NormaliseOptions = {
    defaultCountryCode: config.defaultPhoneCountryCode,
    neverLink: neverLinkTest(runtime.identityRules),
  };
  const ingestor = createIngestor({
    eventStore,
    keyStore,
    suppression,
    hasher,
    normalise,
    metrics,
    consentPurposes: config.consent.purposes,
  });
  return {
    ingestor,
    metrics,
    writeKey,
    keyStore,
    suppression,
    hasher,
    normalise,
    close: async () => {
      await Promise.all([keyStore.close(), suppression.close()]);
    },
  };
}

/**
 * Server mode runs many processes on one log: each must seal and hash with
 * the same secrets, so they come from the environment, never generated into
 * one machine's data directory.
 */
function requireSharedSecrets(config: Config): void {
  const missing = [
    ['TANDEM_MASTER_KEY', config.secrets.masterKey],
    ['TANDEM_HASH_SECRET', config.secrets.hashSecret],
  ].filter(([, value]) => value === undefined);
  if (missing.length > 0)
    throw new TandemError(
      ErrorCodes.CONFIG_INVALID,
      `invalid configuration:\n${missing
        .map(
          ([variable]) =>
            `  ${variable}: must be set when TANDEM_EVENTSTORE_URL is (every process of a deployment shares it; see docs/operations.md)`,
        )
        .join('\n')}`,
      { problems: missing.map(([variable]) => ({ variable, message: 'required in server mode' })) },
    );
}

/** The secret keying identifier hashes (generated into the data directory on a first embedded start). */
export function loadHashSecret(config: Config): ReturnType<typeof loadSecret> {
  if (config.eventStore.kind !== 'lmdb') requireSharedSecrets(config);
  return loadSecret({
    variable: 'TANDEM_HASH_SECRET',
    value: config.secrets.hashSecret,
    file: join(config.secrets.directory, 'hash.secret'),
  });
}

/** Where the identity resolver keeps the snapshot of its graph. */
export function identitySnapshotFile(config: Config): string {
  return join(config.dataDir, 'identity', 'graph.snapshot');
}

/** The local admin key: `TANDEM_ADMIN_KEY`, else one generated into the data directory (local use only). */
export async function loadAdminKey(
  config: Config,
): Promise<{ readonly value: string; readonly generated: boolean }> {
  if (config.secrets.adminKey) return { value: config.secrets.adminKey, generated: false };
  const { secret, generated } = await loadSecret({
    variable: 'TANDEM_ADMIN_KEY',
    value: undefined,
    file: join(config.secrets.directory, 'admin.key'),
  });
  return { value: `adm_${secret.toString('base64url')}`, generated };
}

/** The configured warehouse (chDB under the data directory unless TANDEM_CLICKHOUSE_URL is set), migrated. */
export async function openConfiguredWarehouse(runtime: Runtime): Promise<Warehouse> {
  const { target, database, cluster } = runtime.config.warehouse;
  if (target.kind === 'chdb') await mkdir(target.path, { recursive: true });
  let warehouse: Warehouse | undefined;
  try {
    warehouse = await openWarehouse({ target, database, cluster });
    const { applied, current } = await migrate(warehouse);
    runtime.logger.info(
      { warehouse: warehouse.kind, database, applied, schemaVersion: current },
      'warehouse ready',
    );
    return warehouse;
  } catch (error) {
    await warehouse?.close();
    // chDB refuses a second process on the same path: when the connection is made
    // ("Failed to create connection"), or at the first query ("Cannot lock file").
    if (
      target.kind === 'chdb' &&
      /Cannot lock file|Failed to create connection for path/.test(String(error))
    )
      throw new TandemError(
        ErrorCodes.WAREHOUSE_IN_USE,
        `the embedded ClickHouse at ${target.path} is in use by another Tandem process (chDB runs in one process at a time): stop that one, or run this one without the projector and API, e.g. --parts ingest`,
        { path: target.path },
      );
    throw error;
  }
}
