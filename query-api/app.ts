/**
 * The HTTP app: the ingest routes (write keys) and the query API (API keys
 * with roles), one fastify instance. Built by `buildApp(deps)` and not
 * listening, so tests drive it with `inject`; `tandem serve` listens.
 *
 * Outside any key: `/healthz` (the process serves), `/readyz` (its stores
 * answer and the projection is not far behind), `/metrics` (Prometheus) and
 * `/docs` (the OpenAPI document and Swagger UI).
 */
import cors from '@fastify/cors';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import Fastify, { type FastifyInstance, LogController } from 'fastify';
import {
  jsonSchemaTransform,
  jsonSchemaTransformObject,
  serializerCompiler,
  validatorCompiler,
} from 'fastify-type-provider-zod';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { EventStore } from '../eventstore/event-store.js';
import type { Ingestor } from '../ingest/ingestor.js';
import { catalogRoutes } from '../ingest/routes/catalog.routes.js';
import { consentsRoutes } from '../ingest/routes/consents.routes.js';
import { importRoutes } from '../ingest/routes/imports.routes.js';
import { posRoutes } from '../ingest/routes/pos.routes.js';
import { MAX_BATCH_BYTES, trackingRoutes } from '../ingest/routes/tracking.routes.js';
import type { WriteKeys } from '../ingest/write-keys.js';
import type { AuditLog } from '../privacy/audit.js';
import type { KeyStore } from '../privacy/keystore.js';
import type { Identifier } from '../schemas/identifier.js';
import type { RecommendationSettings } from '../schemas/recommendations.js';
import type { Warehouse } from '../warehouse/warehouse.js';
import { auditRoutes } from './audit/audit.routes.js';
import { assertRole, installAuth, principalOf } from './auth.js';
import { installErrorHandler } from './errors.js';
import { installJsonBody } from './json-body.js';
import type { KeyRegistry } from './keys/key-registry.js';
import { keysRoutes } from './keys/keys.routes.js';
import { type PrivacyRoutesOptions, privacyRoutes } from './privacy/privacy.routes.js';
import { profilesRoutes } from './profiles/profiles.routes.js';
import { recommendationsRoutes } from './recommendations/recommendations.routes.js';
import type { SegmentStore } from './segments/segment-store.js';
import { segmentsRoutes } from './segments/segments.routes.js';
import { sqlRoutes } from './sql/sql.routes.js';

/** One readiness check: a name and whether it holds, with a word on why not. */
export interface ReadinessCheck {
  readonly name: string;
  readonly ok: boolean;
  readonly detail?: string;
}

/** What the query API needs: present when this process serves it (`--parts api`). */
export interface QueryApiDeps {
  readonly keys: KeyRegistry;
  readonly audit: AuditLog;
  readonly warehouse: Warehouse;
  readonly eventStore: EventStore;
  readonly keyStore: Pick<KeyStore, 'find'>;
  readonly parseIdentifier: (text: string) => Identifier;
  readonly segments: SegmentStore;
  /** How the recommendation model trains and answers. */
  readonly recommendations: RecommendationSettings;
  /** Requests per API key per minute. */
  readonly requestsPerMinute: number;
  /** Privacy requests; without them the privacy routes are not served. */
  readonly privacy?: Omit<PrivacyRoutesOptions, 'audit' | 'parseIdentifier'>;
}

export interface AppDeps {
  readonly ingestor: Ingestor;
  readonly writeKeys: WriteKeys;
  readonly metrics: Registry;
  /** The query API's dependencies; without them only ingest is served. */
  readonly api?: QueryApiDeps;
  /** Checks behind `/readyz`; none means ready once serving. */
  readonly readiness?: () => Promise<readonly ReadinessCheck[]>;
  /** The process logger; tests pass none. */
  readonly logger?: Logger;
  /** Tandem's version, for the OpenAPI document. */
  readonly version?: string;
}

export async function buildApp(deps: AppDeps): Promise<FastifyInstance> {
  const app = Fastify({
    ...(deps.logger ? { loggerInstance: deps.logger } : {}),
    bodyLimit: MAX_BATCH_BYTES,
    // Request lines at ingest rates would drown the log; errors are logged by the error handler.
    logController: new LogController({ disableRequestLogging: true }),
    return503OnClosing: true,
  }) as unknown as FastifyInstance;
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  installErrorHandler(app);
  installJsonBody(app);
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Tandem',
        version: deps.version ?? '0.0.0',
        description:
          'Tracking, POS and catalog ingest (write keys), profiles, segments and SQL (API keys with roles). Generated from the zod schemas of the routes.',
      },
      components: {
        securitySchemes: {
          apiKey: { type: 'http', scheme: 'bearer', description: 'An API key: tdm_…' },
          writeKey: { type: 'http', scheme: 'basic', description: 'A write key as the user name' },
        },
      },
    },
    transform: jsonSchemaTransform,
    // Puts the schemas routes share by reference (the recursive segment condition) under components.
    transformObject: jsonSchemaTransformObject,
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });
  // Browsers send tracking calls from the shop's own pages, on any origin.
  await app.register(cors, {
    origin: true,
    methods: ['GET', 'POST', 'DELETE'],
    allowedHeaders: ['Authorization', 'Content-Type', 'Content-Encoding'],
  });
  app.get('/healthz', { schema: { hide: true } }, async () => ({ status: 'ok' }));
  app.get('/readyz', { schema: { hide: true } }, async (_request, reply) => {
    const checks = (await deps.readiness?.()) ?? [];
    const ready = checks.every((check) => check.ok);
    return reply.status(ready ? 200 : 503).send({ status: ready ? 'ready' : 'not_ready', checks });
  });
  app.get('/metrics', { schema: { hide: true } }, async (_request, reply) =>
    reply.type(deps.metrics.contentType).send(await deps.metrics.metrics()),
  );
  await app.register(trackingRoutes, { ingestor: deps.ingestor, writeKeys: deps.writeKeys });
  await app.register(posRoutes, { ingestor: deps.ingestor, writeKeys: deps.writeKeys });
  await app.register(catalogRoutes, { ingestor: deps.ingestor, writeKeys: deps.writeKeys });
  await app.register(consentsRoutes, { ingestor: deps.ingestor, writeKeys: deps.writeKeys });
  await app.register(importRoutes, { ingestor: deps.ingestor, writeKeys: deps.writeKeys });
  const { api } = deps;
  if (api) await app.register(async (scope) => registerQueryApi(scope, api));
  return app;
}

/** The query API: one encapsulated scope, so its key check and rate limit cover only these routes. */
async function registerQueryApi(scope: FastifyInstance, api: QueryApiDeps): Promise<void> {
  await installAuth(scope, { keys: api.keys, requestsPerMinute: api.requestsPerMinute });
  await scope.register(keysRoutes, { keys: api.keys, audit: api.audit });
  await scope.register(auditRoutes, { audit: api.audit });
  await scope.register(profilesRoutes, {
    warehouse: api.warehouse,
    eventStore: api.eventStore,
    keyStore: api.keyStore,
    audit: api.audit,
    parseIdentifier: api.parseIdentifier,
  });
  await scope.register(sqlRoutes, {
    warehouse: api.warehouse,
    authorize: (request) => {
      const principal = principalOf(request);
      assertRole(principal, 'analyst');
      return principal;
    },
    audit: ({ keyId, action, outcome, query, tables, rows }) =>
      api.audit.record({
        keyId,
        action,
        outcome,
        details: { query, tables, ...(rows === undefined ? {} : { rows }) },
      }),
  });
  await scope.register(segmentsRoutes, {
    segments: api.segments,
    warehouse: api.warehouse,
    eventStore: api.eventStore,
    keyStore: api.keyStore,
    audit: api.audit,
  });
  await scope.register(recommendationsRoutes, {
    warehouse: api.warehouse,
    settings: api.recommendations,
  });
  if (api.privacy)
    await scope.register(privacyRoutes, {
      ...api.privacy,
      audit: api.audit,
      parseIdentifier: api.parseIdentifier,
    });
}
