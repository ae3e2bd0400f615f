/**
 * The catalog: `POST /v1/catalog/products` and `POST /v1/catalog/stores` take
 * one entry or an array of up to 1000, from a write key, and upsert them. All
 * land or none: a bad entry answers 400 with its index and field.
 */
import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { Product, Store } from '../../schemas/catalog.js';
import type { Ingestor } from '../ingestor.js';
import type { WriteKeys } from '../write-keys.js';
import { authenticateWriteKey } from './write-key.auth.js';

export const MAX_CATALOG_BYTES = 5 * 1024 * 1024;
export const MAX_CATALOG_ENTRIES = 1000;

export interface CatalogRoutesOptions {
  readonly ingestor: Ingestor;
  readonly writeKeys: WriteKeys;
}

const oneOrMany = <T extends z.ZodType>(entry: T) =>
  z.union([entry, z.array(entry).min(1).max(MAX_CATALOG_ENTRIES)]);

const Accepted = z.object({
  success: z.literal(true),
  accepted: z
    .int()
    .describe('Entries now durably in the log, including ones a retry had already stored'),
});

const description = (what: string) =>
  `One ${what} or an array of up to ${MAX_CATALOG_ENTRIES}, all or none: a bad entry answers 400 naming the path of every bad field, and nothing is stored. A retried request is stored once; a changed entry (a new price) is a new upsert, and the newest wins. Answers once the entries are durably in the log.`;

export const catalogRoutes: FastifyPluginAsync<CatalogRoutesOptions> = async (
  app,
  { ingestor, writeKeys },
) => {
  const api = app.withTypeProvider<ZodTypeProvider>();
  const common = { tags: ['catalog'], security: [{ writeKey: [] }], response: { 200: Accepted } };

  api.post(
    '/v1/catalog/products',
    {
      schema: {
        ...common,
        summary: 'Upsert products of the catalog',
        description: description('product'),
        body: oneOrMany(Product),
      },
      bodyLimit: MAX_CATALOG_BYTES,
    },
    async (request) => {
      const { sourceId } = authenticateWriteKey(request, writeKeys);
      const products = Array.isArray(request.body) ? request.body : [request.body];
      const { accepted } = await ingestor.catalog({ products }, Date.now(), sourceId);
      return { success: true as const, accepted };
    },
  );

  api.post(
    '/v1/catalog/stores',
    {
      schema: {
        ...common,
        summary: 'Upsert physical stores',
        description: description('store'),
        body: oneOrMany(Store),
      },
      bodyLimit: MAX_CATALOG_BYTES,
    },
    async (request) => {
      const { sourceId } = authenticateWriteKey(request, writeKeys);
      const stores = Array.isArray(request.body) ? request.body : [request.body];
      const { accepted } = await ingestor.catalog({ stores }, Date.now(), sourceId);
      return { success: true as const, accepted };
    },
  );
};
