import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { Gauge, type Registry } from 'prom-client';
import type { LagReporter } from '../eventstore/log-lag.js';
import { openResolver, type Resolver } from '../identity/resolver.js';
import { writeAccessExport } from '../privacy/access-export.js';
import { openAuditLog } from '../privacy/audit.js';
import { identifierFromText } from '../privacy/identifiers.js';
import { createPrivacyRunner } from '../privacy/request-runner.js';
import { openPrivacyRequests } from '../privacy/requests.js';
import { scheduleRetention } from '../privacy/retention.js';
import {
  DEFAULT_PROJECTOR,
  openProjector,
  type Projector,
  readCheckpoint,
} from '../projections/projector.js';
import { buildApp, type ReadinessCheck } from '../query-api/app.js';
import { openKeyRegistry } from '../query-api/keys/key-registry.js';
import { readinessChecks } from '../query-api/readiness.js';
import { scheduleModelRefreshes } from '../query-api/recommendations/reco-model.js';
import { scheduleRefreshes } from '../query-api/segments/segment-refresh.js';
import { openSegmentStore } from '../query-api/segments/segment-store.js';
import { DEFAULT_RECOMMENDATION_SETTINGS } from '../schemas/recommendations.js';
import { registerChdbMetrics } from '../warehouse/metrics.js';
import type { Warehouse } from '../warehouse/warehouse.js';
import type { Runtime } from './runtime.js';
import {
  identitySnapshotFile,
  loadAdminKey,
  openConfiguredWarehouse,
  openIngest,
} from './stores.js';
import { packageVersion } from './version.js';

export interface Platform {
  readonly app: FastifyInstance;
  /** The URL the server listens on. */
  readonly address: string;
  /** The bootstrap write key, and whether it was generated on this start (local use only). */
  readonly writeKey: { readonly value: string; readonly generated: boolean };
  /** The bootstrap admin key (`TANDEM_ADMIN_KEY` or generated, local use only). */
  readonly adminKey: { readonly value: string; readonly generated: boolean };
  /** The identity resolver, when this process runs it. */
  readonly resolver: Resolver | undefined;
  /** The warehouse projector, when this process runs it. */
  readonly projector: Projector | undefined;
  /** The warehouse, when this process opened it (projector or API). */
  readonly warehouse: Warehouse | undefined;
  /** Stops accepting requests, finishes those in flight, closes the stores the platform opened. */
  close(): Promise<void>;
}

/** The parts one process can run; `tandem serve --parts` picks them. */
export const PARTS = ['ingest', 'api', 'resolver', 'projector'] as const;
export type Part = (typeof PARTS)[number];

export interface PlatformOptions {
  readonly host: string;
  readonly port: number;
  readonly parts: readonly Part[];
  /** Checks `/readyz` adds to the parts' own (the demo's load, say). */
  readonly readiness?: () => Promise<readonly ReadinessCheck[]>;
}

/**
 * Starts the chosen parts: the HTTP server (ingest) on the configured
 * address, the identity resolver and the warehouse projector following the
 * log. The HTTP server always answers /healthz, whichever parts run.
 */
export async function startPlatform(runtime: Runtime, options: PlatformOptions): Promise<Platform> {
  const { config, eventStore } = runtime;
  const runs = (part: Part) => options.parts.includes(part);
  const ingest = await openIngest(runtime);
  const adminKey = await loadAdminKey(config);
  const keys = await openKeyRegistry({
    eventStore,
    bootstrap: {
      adminKey: adminKey.value,
      writeKey: runs('ingest') ? { key: ingest.writeKey.value, sourceId: 'default' } : undefined,
    },
  });
  const refreshKeys = setInterval(() => {
    keys.refresh().catch((error: unknown) => {
      runtime.logger.warn({ err: error }, 'could not read new keys; retrying');
    });
  }, 1000).unref();
  const resolver = runs('resolver') ? await followIdentity(runtime, ingest.metrics) : undefined;
  const warehouse =
    runs('projector') || runs('api') ? await openConfiguredWarehouse(runtime) : undefined;
  if (warehouse) registerChdbMetrics(warehouse, ingest.metrics);
  const projection =
    warehouse && runs('projector')
      ? await followProjections(runtime, warehouse, ingest.metrics)
      : undefined;
  const segments = warehouse ? await openSegmentStore(eventStore) : undefined;
  // Scheduled refreshes run beside the projector: one per deployment, like it.
  const stopRefreshes =
    warehouse && segments && runs('projector')
      ? scheduleRefreshes({ warehouse, segments, log: runtime.logger.child({ part: 'segments' }) })
      : undefined;
  const stopModelRefreshes =
    warehouse && runs('projector')
      ? scheduleModelRefreshes({
          warehouse,
          settings: DEFAULT_RECOMMENDATION_SETTINGS,
          everyMinutes: config.recommendations.refreshMinutes,
          log: runtime.logger.child({ part: 'recommendations' }),
        })
      : undefined;
  const audit = openAuditLog(eventStore);
  const parseIdentifier = (text: string) =>
    identifierFromText(text, ingest.hasher, { defaultCountryCode: config.defaultPhoneCountryCode });
  const requests = openPrivacyRequests({ eventStore, keyStore: ingest.keyStore });
  const privacy = warehouse
    ? createPrivacyRunner({
        eventStore,
        keyStore: ingest.keyStore,
        suppression: ingest.suppression,
        warehouse,
        requests,
        audit,
        parseIdentifier,
        projectedUpTo: async () => (await readCheckpoint(warehouse, DEFAULT_PROJECTOR))?.position,
        log: runtime.logger.child({ part: 'privacy' }),
        // The crash tests' failpoint (TANDEM_FAULT_KILL_AFTER=privacy:STEP): killed as by kill -9.
        ...(config.faults.killAfter?.startsWith('privacy:')
          ? {
              crashAfter: config.faults.killAfter.slice('privacy:'.length),
              crash: () => process.kill(process.pid, 'SIGKILL'),
            }
          : {}),
      })
    : undefined;
  // Retention runs beside the projector too (one per deployment): daily, first a minute after the start.
  const stopRetention =
    warehouse && runs('projector')
      ? scheduleRetention({
          eventStore,
          warehouse,
          policy: config.retention,
          audit,
          log: runtime.logger.child({ part: 'retention' }),
        })
      : undefined;
  // Requests run beside the projector (one runner per deployment); an API elsewhere only files them.
  const privacyRunner =
    privacy && runs('projector')
      ? inBackground(
          privacy,
          runtime.logger,
          'the privacy runner stopped; requests wait for a restart',
        )
      : undefined;
  const app = await buildApp({
    ingestor: ingest.ingestor,
    writeKeys: runs('ingest') ? keys.writeKeys : { resolve: () => undefined },
    metrics: ingest.metrics,
    logger: runtime.logger,
    version: packageVersion(),
    ...(warehouse && segments && runs('api')
      ? {
          api: {
            keys,
            audit,
            warehouse,
            eventStore,
            keyStore: ingest.keyStore,
            parseIdentifier,
            segments,
            privacy: {
              requests,
              filed: () => privacy?.nudge(),
              exportAccess: (person, requestId, out) =>
                writeAccessExport(
                  {
                    eventStore,
                    keyStore: ingest.keyStore,
                    warehouse,
                    hasher: ingest.hasher,
                    normalise: ingest.normalise,
                  },
                  person,
                  out,
                  { requestId },
                ),
            },
            recommendations: DEFAULT_RECOMMENDATION_SETTINGS,
            requestsPerMinute: config.api.requestsPerMinute,
          },
        }
      : {}),
    readiness: async () => [
      ...(await readinessChecks({
        eventStore,
        warehouse,
        resolver: resolver?.resolver,
        projector: projection?.projector,
      })),
      ...running('resolver', resolver?.background),
      ...running('projector', projection?.background),
      ...running('privacy_runner', privacyRunner),
      ...((await options.readiness?.()) ?? []),
    ],
  });
  const address = await app.listen({ host: options.host, port: options.port });
  return {
    app,
    address,
    writeKey: ingest.writeKey,
    adminKey,
    resolver: resolver?.resolver,
    projector: projection?.projector,
    warehouse,
    close: async () => {
      clearInterval(refreshKeys);
      await app.close();
      await stopRefreshes?.();
      await stopModelRefreshes?.();
      await privacyRunner?.stop();
      await stopRetention?.();
      await resolver?.background.stop();
      await projection?.background.stop();
      await warehouse?.close();
      await ingest.close();
    },
  };
}

/** The identity resolver, following the log in the background until stopped; its lag is a metric. */
async function followIdentity(
  runtime: Runtime,
  metrics: Registry,
): Promise<{ resolver: Resolver; background: Background }> {
  const log = runtime.logger.child({ part: 'resolver' });
  const resolver = await openResolver({
    eventStore: runtime.eventStore,
    rules: runtime.identityRules,
    snapshotFile: identitySnapshotFile(runtime.config),
    log,
  });
  registerLagGauges(metrics, 'resolver', 'the identity resolver', resolver);
  return {
    resolver,
    background: inBackground(
      resolver,
      log,
      'the identity resolver stopped; profiles are not updated until a restart',
    ),
  };
}

/** The warehouse projector, following the log in the background until stopped; its lag is a metric. */
async function followProjections(
  runtime: Runtime,
  warehouse: Warehouse,
  metrics: Registry,
): Promise<{ projector: Projector; background: Background }> {
  const log = runtime.logger.child({ part: 'projector' });
  const projector = await openProjector({
    eventStore: runtime.eventStore,
    warehouse,
    priority: runtime.identityRules.priority,
    retention: runtime.config.retention,
    log,
  });
  registerLagGauges(metrics, 'projector', 'the warehouse projection', projector);
  return {
    projector,
    background: inBackground(
      projector,
      log,
      'the projector stopped; the warehouse is not updated until a restart',
    ),
  };
}

/** `tandem_<part>_lag_events` and `_seconds`: how far `what` is behind the log's head (NaN when it cannot tell). */
function registerLagGauges(
  metrics: Registry,
  part: 'resolver' | 'projector',
  what: string,
  follower: LagReporter,
): void {
  const lag = () => follower.lag().catch(() => ({ events: Number.NaN, seconds: Number.NaN }));
  new Gauge({
    name: `tandem_${part}_lag_events`,
    help: `Log positions ${what} is behind the head (events, on the embedded log)`,
    registers: [metrics],
    async collect() {
      this.set((await lag()).events);
    },
  });
  new Gauge({
    name: `tandem_${part}_lag_seconds`,
    help: `Age of the oldest event ${what} has not yet made durable (0 when caught up)`,
    registers: [metrics],
    async collect() {
      this.set((await lag()).seconds);
    },
  });
}

/** A part following the log in the background: how to stop it, and why it stopped by itself, if it did. */
interface Background {
  stop(): Promise<void>;
  /** The error it stopped on; undefined while it runs. */
  failure(): unknown;
}

/** Starts `part.follow` in the background, logging `failure` if it stops on an error. */
function inBackground(
  part: { follow(signal: AbortSignal): Promise<void> },
  log: Logger,
  failure: string,
): Background {
  const controller = new AbortController();
  let stoppedOn: unknown;
  const following = part.follow(controller.signal).catch((error: unknown) => {
    stoppedOn = error ?? new Error('stopped');
    log.error({ err: error }, failure);
  });
  return {
    stop: async () => {
      controller.abort();
      await following;
    },
    failure: () => stoppedOn,
  };
}

/** A readiness check that fails once the part stopped on an error (it waits for a restart). */
function running(name: string, part: Background | undefined): ReadinessCheck[] {
  if (!part) return [];
  const error = part.failure();
  return [
    error === undefined
      ? { name, ok: true }
      : {
          name,
          ok: false,
          detail: `stopped on an error, restart the process: ${error instanceof Error ? error.message : String(error)}`,
        },
  ];
}
