/**
 * Live POS receipts: `POST /v1/pos/receipts` takes one receipt or an array of
 * up to 1000, from a till system's write key. All land or none: a bad
 * receipt answers 400 with its index and field.
 */
import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { PosReceipt } from '../../schemas/pos.js';
import type { Ingestor } from '../ingestor.js';
import type { WriteKeys } from '../write-keys.js';
import { authenticateWriteKey } from './write-key.auth.js';

export const MAX_RECEIPTS_BYTES = 5 * 1024 * 1024;

export interface PosRoutesOptions {
  readonly ingestor: Ingestor;
  readonly writeKeys: WriteKeys;
}

const Receipts = z.union([PosReceipt, z.array(PosReceipt).min(1).max(1000)]);

export const posRoutes: FastifyPluginAsync<PosRoutesOptions> = async (
  app,
  { ingestor, writeKeys },
) => {
  app
    .withTypeProvider<ZodTypeProvider>()
    .post(
      '/v1/pos/receipts',
      { schema: { body: Receipts }, bodyLimit: MAX_RECEIPTS_BYTES },
      async (request) => {
        const { sourceId } = authenticateWriteKey(request, writeKeys);
        const receipts = Array.isArray(request.body) ? request.body : [request.body];
        const result = await ingestor.receipts(receipts, Date.now(), sourceId);
        return { success: true, ...result };
      },
    );
};
