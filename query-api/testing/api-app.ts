/**
 * The whole query API on real stores, for route tests: the sample fixtures
 * through the real ingest into LMDB, resolved, projected into chDB, and an
 * app with a bootstrap admin key. One per test file (chDB: one data
 * directory per process).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { Registry } from 'prom-client';
import { packageVersion } from '../../cli/version.js';
import { openResolver } from '../../identity/resolver.js';
import { ingestSample, openSampleLog, type SampleLog } from '../../ingest/testing/sample-log.js';
import { type AuditLog, openAuditLog } from '../../privacy/audit.js';
import { identifierFromText } from '../../privacy/identifiers.js';
import { openProjector } from '../../projections/projector.js';
import type { Role } from '../../schemas/api-keys.js';
import { DEFAULT_IDENTITY_RULES } from '../../schemas/identity.js';
import {
  DEFAULT_RECOMMENDATION_SETTINGS,
  type RecommendationSettings,
} from '../../schemas/recommendations.js';
import { migrate } from '../../warehouse/migrations.js';
import { openWarehouse, type Warehouse } from '../../warehouse/warehouse.js';
import { buildApp } from '../app.js';
import { type KeyRegistry, openKeyRegistry } from '../keys/key-registry.js';
import { readinessChecks } from '../readiness.js';
import { openSegmentStore, type SegmentStore } from '../segments/segment-store.js';

export const TEST_ADMIN_KEY = 'adm_test_admin_key_0123456789';
export const TEST_WRITE_KEY = 'wk_test_write_key_0123456789';

export interface TestApi {
  readonly app: FastifyInstance;
  readonly sample: SampleLog;
  readonly warehouse: Warehouse;
  readonly keys: KeyRegistry;
  readonly audit: AuditLog;
  readonly segments: SegmentStore;
  /** `Authorization` header of a fresh API key with `roles`. */
  bearer(...roles: Role[]): Promise<string>;
  /** Runs the resolver and the projector over what was appended since. */
  project(): Promise<void>;
  close(): Promise<void>;
}

export const ADMIN = `Bearer ${TEST_ADMIN_KEY}`;

export async function openTestApi(
  options: {
    readonly requestsPerMinute?: number;
    readonly sample?: boolean;
    readonly recommendations?: RecommendationSettings;
  } = {},
): Promise<TestApi> {
  const sample = await openSampleLog('tandem-api-');
  if (options.sample !== false) await ingestSample(sample.ingestor);
  const chdbDir = await mkdtemp(join(tmpdir(), 'tandem-api-chdb-'));
  const warehouse = await openWarehouse({
    target: { kind: 'chdb', path: chdbDir },
    database: 'tandem',
  });
  await migrate(warehouse);
  const project = async () => {
    const resolver = await openResolver({
      eventStore: sample.eventStore,
      rules: DEFAULT_IDENTITY_RULES,
    });
    await resolver.catchUp();
    const projector = await openProjector({
      eventStore: sample.eventStore,
      warehouse,
      priority: DEFAULT_IDENTITY_RULES.priority,
    });
    await projector.catchUp();
  };
  await project();
  const keys = await openKeyRegistry({
    eventStore: sample.eventStore,
    bootstrap: {
      adminKey: TEST_ADMIN_KEY,
      writeKey: { key: TEST_WRITE_KEY, sourceId: 'test-source' },
    },
  });
  const audit = openAuditLog(sample.eventStore);
  const segments = await openSegmentStore(sample.eventStore);
  const app = await buildApp({
    ingestor: sample.ingestor,
    writeKeys: keys.writeKeys,
    metrics: new Registry(),
    version: packageVersion(),
    readiness: () => readinessChecks({ eventStore: sample.eventStore, warehouse }),
    api: {
      keys,
      audit,
      warehouse,
      eventStore: sample.eventStore,
      keyStore: sample.keyStore,
      parseIdentifier: (text) =>
        identifierFromText(text, sample.hasher, { defaultCountryCode: '+1' }),
      segments,
      recommendations: options.recommendations ?? DEFAULT_RECOMMENDATION_SETTINGS,
      requestsPerMinute: options.requestsPerMinute ?? 100_000,
    },
  });
  return {
    app,
    sample,
    warehouse,
    keys,
    audit,
    segments,
    async bearer(...roles) {
      const { token } = await keys.create(
        { name: `test ${roles.join(',')}`, grant: { kind: 'api', roles } },
        'test',
      );
      return `Bearer ${token}`;
    },
    project,
    async close() {
      await app.close();
      await warehouse.close();
      await sample.close();
      await rm(chdbDir, { recursive: true, force: true });
    },
  };
}
