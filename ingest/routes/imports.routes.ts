/**
 * `POST /v1/imports?mode=strict|lenient`: a file of receipts — NDJSON, CSV,
 * Arrow IPC stream or Parquet, by Content-Type — streamed to a temporary file
 * (never held in memory), then imported with a report of every bad row.
 * Strict (the default) imports nothing when a row is bad and answers 400.
 */
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { ErrorCodes, TandemError } from '../../schemas/errors.js';
import { type ImportFormat, readImportItems } from '../import/import-items.js';
import { importReceipts } from '../import/importer.js';
import type { Ingestor } from '../ingestor.js';
import type { WriteKeys } from '../write-keys.js';
import { authenticateWriteKey } from './write-key.auth.js';

/** The largest import accepted, decompressed. */
export const MAX_IMPORT_BYTES = 8 * 1024 ** 3;

const FORMATS: Readonly<Record<string, ImportFormat>> = {
  'application/x-ndjson': 'ndjson',
  'application/ndjson': 'ndjson',
  'text/csv': 'csv',
  'application/vnd.apache.arrow.stream': 'arrow',
  'application/vnd.apache.parquet': 'parquet',
  'application/x-parquet': 'parquet',
};

export interface ImportRoutesOptions {
  readonly ingestor: Ingestor;
  readonly writeKeys: WriteKeys;
}

export const importRoutes: FastifyPluginAsync<ImportRoutesOptions> = async (
  app,
  { ingestor, writeKeys },
) => {
  // The body stays a stream: the handler spools it to disk.
  app.addContentTypeParser(Object.keys(FORMATS), (_request, payload, done) => done(null, payload));
  app.withTypeProvider<ZodTypeProvider>().post(
    '/v1/imports',
    {
      schema: {
        querystring: z.strictObject({ mode: z.enum(['strict', 'lenient']).default('strict') }),
      },
    },
    async (request, reply) => {
      const { sourceId } = authenticateWriteKey(request, writeKeys);
      const mediaType =
        (request.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
      const format = FORMATS[mediaType];
      if (!format) {
        throw new TandemError(
          ErrorCodes.VALIDATION,
          `Content-Type must be one of ${Object.keys(FORMATS).join(', ')}`,
        );
      }
      const dir = await mkdtemp(join(tmpdir(), 'tandem-import-'));
      try {
        const path = join(dir, `upload.${format}`);
        await pipeline(
          request.body as NodeJS.ReadableStream,
          limitBytes(MAX_IMPORT_BYTES),
          createWriteStream(path),
        );
        const report = await importReceipts(() => readImportItems(path, format), ingestor, {
          mode: request.query.mode,
          sourceId,
        });
        const failed = report.mode === 'strict' && report.rejected > 0;
        return reply.status(failed ? 400 : 200).send({ success: !failed, ...report });
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    },
  );
};

function limitBytes(limit: number): Transform {
  let seen = 0;
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      seen += chunk.length;
      if (seen > limit)
        callback(
          new TandemError(
            ErrorCodes.PAYLOAD_TOO_LARGE,
            `the import is larger than ${limit / 1024 ** 3} GB`,
          ),
        );
      else callback(null, chunk);
    },
  });
}
