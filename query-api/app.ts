/**
 * The HTTP app: ingest routes now, the query API's as they are built. Built
 * by `buildApp(deps)` and not listening, so tests drive it with `inject`;
 * `tandem serve` listens.
 */
import cors from '@fastify/cors';
import Fastify, { type FastifyInstance, LogController } from 'fastify';
import { serializerCompiler, validatorCompiler } from 'fastify-type-provider-zod';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { Ingestor } from '../ingest/ingestor.js';
import { importRoutes } from '../ingest/routes/imports.routes.js';
import { posRoutes } from '../ingest/routes/pos.routes.js';
import { MAX_BATCH_BYTES, trackingRoutes } from '../ingest/routes/tracking.routes.js';
import type { WriteKeys } from '../ingest/write-keys.js';
import { installErrorHandler } from './errors.js';
import { installJsonBody } from './json-body.js';

export interface AppDeps {
  readonly ingestor: Ingestor;
  readonly writeKeys: WriteKeys;
  readonly metrics: Registry;
  /** The process logger; tests pass none. */
  readonly logger?: Logger;
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
  // Browsers send tracking calls from the shop's own pages, on any origin.
  await app.register(cors, {
    origin: true,
    methods: ['GET', 'POST'],
    allowedHeaders: ['Authorization', 'Content-Type', 'Content-Encoding'],
  });
  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/metrics', async (_request, reply) =>
    reply.type(deps.metrics.contentType).send(await deps.metrics.metrics()),
  );
  await app.register(trackingRoutes, { ingestor: deps.ingestor, writeKeys: deps.writeKeys });
  await app.register(posRoutes, { ingestor: deps.ingestor, writeKeys: deps.writeKeys });
  await app.register(importRoutes, { ingestor: deps.ingestor, writeKeys: deps.writeKeys });
  return app;
}
