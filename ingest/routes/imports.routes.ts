/**
 * `POST /v1/imports?mode=strict|lenient`: a file of receipts — NDJSON, CSV,
 * Arrow IPC stream or Parquet, by Content-Type — streamed to a temporary file
 * (never held in memory), then imported with a report of every bad row.
 * Strict (the default) imports nothing when a row is bad and answers 400.
 *
 * The spooled copy holds personal data in the clear (member cards, phones,
 * card tokens): it is removed when the request ends, and one that a killed
 * process left behind is removed when the next process starts its routes.
 */
import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, readdir, rm } from 'node:fs/promises';
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
  /** Where uploads are spooled (default: the system's temporary directory). */
  readonly spoolDirectory?: string;
}

export const importRoutes: FastifyPluginAsync<ImportRoutesOptions> = async (
  app,
  { ingestor, writeKeys, spoolDirectory = tmpdir() },
) => {
  await removeAbandonedSpools(spoolDirectory);
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
      // The pid in the name tells a later process whether the owner still runs;
      // the spool is marked in use before it exists, so no sweep can take it.
      const dir = join(
        spoolDirectory,
        `${SPOOL_PREFIX}${process.pid}-${randomBytes(6).toString('base64url')}`,
      );
      spooling.add(dir);
      try {
        await mkdir(dir, { mode: 0o700 });
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
        spooling.delete(dir);
      }
    },
  );
};

const SPOOL_PREFIX = 'tandem-import-';
/** This process's spools in use (several apps can run in one process). */
const spooling = new Set<string>();

/**
 * Removes the spools in `directory` whose process is gone: killed (kill -9,
 * a crash) before its `finally` ran. A spool of this process's pid that is not
 * in use is from an earlier process that had the same pid (pid 1 in a
 * container); one of a pid that runs again for another program stays until a
 * later start finds that pid gone.
 */
export async function removeAbandonedSpools(directory: string): Promise<string[]> {
  const names = await readdir(directory).catch(() => []);
  const abandoned = names
    .map((name) => ({ name, pid: Number(/^tandem-import-(\d+)-/.exec(name)?.[1]) }))
    .filter(({ name, pid }) => {
      if (!Number.isSafeInteger(pid) || pid <= 0) return false;
      if (pid === process.pid) return !spooling.has(join(directory, name));
      return !isRunning(pid);
    })
    .map(({ name }) => join(directory, name));
  await Promise.all(abandoned.map((dir) => rm(dir, { recursive: true, force: true })));
  return abandoned;
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it runs, as another user.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

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
